"""The browser demo (`facegen demo`, extra ``facegen[demo]``): :class:`Studio` answers the
requests with plain Python; :mod:`facegen.demo.app` puts a Gradio page in front of it.

Importing this package does not import Gradio; only :mod:`facegen.demo.app` does.
"""

from facegen.demo.studio import Studio

__all__ = ["Studio"]
