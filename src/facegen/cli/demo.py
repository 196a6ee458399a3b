"""`facegen demo RUN [RUN ...]`: the browser app (optional extra ``facegen[demo]``)."""

from __future__ import annotations

import argparse
import importlib.util

from facegen.cli.common import add_device, int_at_least, positive_float, positive_int
from facegen.errors import FacegenError

INSTALL_HINT = "the demo needs Gradio: pip install 'facegen[demo]'"


def _cmd_demo(args: argparse.Namespace) -> int:
    # Checked before the runs load (seconds with torch), so a missing extra fails at once.
    if importlib.util.find_spec("gradio") is None:
        raise FacegenError(INSTALL_HINT)
    from facegen.demo.app import serve
    from facegen.demo.studio import Studio
    from facegen.run import load_run

    runs = [load_run(path, args.device) for path in args.runs]
    studio = Studio(runs)
    for name in studio.names:
        print(f"loaded {studio.describe(name)}")
    app, url = serve(
        studio,
        host=args.host,
        port=args.port,
        share=args.share,
        queue_size=args.queue_size,
        concurrency=args.concurrency,
        max_upload_mb=args.max_upload_mb,
    )
    print(f"facegen demo: {url}  (Ctrl-C to stop)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"listening on {args.host}: anyone who can reach this machine can use the demo")
    share_url = getattr(app, "share_url", None)
    if share_url:
        print(f"public link: {share_url}  (anyone with the link can use the demo)")
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
        studio.close()
    print("demo stopped")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="explore trained runs in the browser (needs facegen[demo])",
        description="Serve a web page with Sample, Interpolate, Edit and Reconstruct tabs "
        "for one or more runs (a selector switches between them). Attribute sliders come "
        "from the directions `facegen edit` saved in each run. Uploaded photos are framed "
        "like `data prepare --detect-faces` frames them. Binds 127.0.0.1 unless --host says "
        "otherwise; requests wait in a bounded queue.",
    )
    demo.add_argument("runs", nargs="+", metavar="RUN", help="run folders to serve")
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
        "machine only; 0.0.0.0 opens it to the network)",
    )  # fmt: skip
    demo.add_argument("--port", type=int_at_least(1), default=7860, help="port (default 7860)")
    demo.add_argument(
        "--share",
        action="store_true",
        help="also make a public gradio.live link (off by default; needs the internet)",
    )
    demo.add_argument(
        "--queue-size",
        type=positive_int,
        default=16,
        metavar="N",
        help="requests that may wait; more are turned away with a message (default 16)",
    )
    demo.add_argument(
        "--concurrency",
        type=positive_int,
        default=2,
        metavar="N",
        help="requests of one kind computed at once (default 2: on 2 CPU cores it served "
        "1.4-1.7x the requests of 1, and 4 no more than 2)",
    )
    demo.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=10.0,
        metavar="MB",
        help="largest photo upload (default 10)",
    )
    add_device(demo)
    demo.set_defaults(func=_cmd_demo)
