"""`facegen demo`: the browser app, a Gradio page over a :class:`~facegen.demo.studio.Studio`.

Every event calls one Studio method; a :class:`~facegen.errors.FacegenError` (a bad upload,
a photo without a face, an out-of-range value sent to the API) becomes a message in the
page, never a stack trace in the page or the terminal. Requests wait in one bounded queue:
when it is full, the page says so instead of piling up work the machine cannot do.

>>> app = build_app(Studio([facegen.load_run("runs/vae")]))
>>> app.launch(server_name="127.0.0.1")
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from typing import Any

from facegen.data.sources import IMAGE_EXTENSIONS
from facegen.demo.studio import (
    MAX_FACES,
    MAX_SEED,
    MAX_STRENGTH,
    MAX_TRUNCATION,
    Studio,
    no_directions_message,
)
from facegen.errors import FacegenError

# Nothing leaves the machine: no usage statistics (set before Gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

TITLE = "facegen demo"
DETECT_LABEL = "Find and align the face in uploaded photos (off: the photo is already a face crop)"


def _in_page(function: Callable[..., Any]) -> Callable[..., Any]:
    """Show a FacegenError as a message in the page, without a traceback anywhere."""

    @functools.wraps(function)
    def answer(*args: Any) -> Any:
        try:
            return function(*args)
        except FacegenError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return answer


def build_app(studio: Studio) -> gr.Blocks:
    """The demo's page: Sample, Interpolate, Edit and Reconstruct tabs over ``studio``'s
    runs, with a run selector when there are several."""
    names = studio.names
    first = names[0]
    attributes = sorted({a for name in names for a in studio.attributes(name)})

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown(f"# {TITLE}\nNew faces, walks between faces and attribute edits.")
        run = gr.Dropdown(names, value=first, label="Run", visible=len(names) > 1, elem_id="run")
        about = gr.Markdown(studio.describe(first))

        with gr.Tab("Sample"):
            with gr.Row():
                seed = _seed("Seed", 0, elem_id="seed")
                count = gr.Slider(1, MAX_FACES, value=16, step=1, label="Faces")
                sampler = gr.Dropdown(
                    studio.samplers(first), value=studio.samplers(first)[0], label="Sampler"
                )
                truncation = gr.Slider(
                    0, MAX_TRUNCATION, value=0, step=0.1, label="Truncation (0: off)"
                )
            with gr.Row():
                sample_button = gr.Button("Sample", variant="primary")
                new_button = gr.Button("New faces")
            samples = gr.Image(label="Samples", format="png", interactive=False, elem_id="samples")

        with gr.Tab("Interpolate"):
            with gr.Row():
                seed_a, photo_a = _end("A", 1, studio.has_encoder(first))
                seed_b, photo_b = _end("B", 2, studio.has_encoder(first))
            detect_walk = gr.Checkbox(True, label=DETECT_LABEL)
            mix = gr.Slider(0, 1, value=0.5, step=0.05, label="Mix (0: A, 1: B)")
            walk_button = gr.Button("Interpolate", variant="primary")
            with gr.Row():
                mixed = gr.Image(
                    label="Face at the mix", format="png", interactive=False, elem_id="mixed"
                )
                gif = gr.Image(
                    label="The walk as a GIF", type="filepath", interactive=False, elem_id="gif"
                )
            strip = gr.Image(
                label="The walk", format="png", interactive=False, show_label=False, elem_id="strip"
            )

        with gr.Tab("Edit"):
            edit_note = gr.Markdown(_edit_note(studio, first))
            with gr.Row():
                edit_seed = _seed("Seed", 3, elem_id="edit-seed")
                edit_photo = _photo("or a photo", studio.has_encoder(first), elem_id="edit-photo")
            detect_edit = gr.Checkbox(True, label=DETECT_LABEL, visible=studio.has_encoder(first))
            sliders = [
                gr.Slider(
                    -MAX_STRENGTH, MAX_STRENGTH, value=0, step=0.25, label=f"{attribute} (sd)",
                    visible=attribute in studio.attributes(first),
                    elem_id=f"strength-{attribute}",
                )
                for attribute in attributes
            ]  # fmt: skip
            edit_button = gr.Button("Edit", variant="primary")
            edited = gr.Image(
                label="Before and after", format="png", interactive=False, elem_id="edited"
            )

        with gr.Tab("Reconstruct"):
            recon_note = gr.Markdown(_recon_note(studio, first))
            recon_photo = _photo("Photo", True, elem_id="recon-photo")
            detect_recon = gr.Checkbox(True, label=DETECT_LABEL)
            recon_button = gr.Button("Reconstruct", variant="primary")
            reconstruction = gr.Image(
                label="Reconstruction", format="png", interactive=False, elem_id="reconstruction"
            )

        sample = _in_page(
            lambda name, s, n, sam, t: studio.sample(name, s, n, sam, t)
        )  # fmt: skip
        sample_inputs = [run, seed, count, sampler, truncation]
        sample_button.click(sample, sample_inputs, samples, api_name="sample")
        # Faces as the page opens; the new-seed button draws a seed, then samples.
        app.load(sample, sample_inputs, samples, api_visibility="private")
        new_button.click(
            lambda: random.randint(0, MAX_SEED), None, seed, api_visibility="private"
        ).then(sample, sample_inputs, samples, api_visibility="private")

        def walk(name, a, b, photo1, photo2, detect, fraction):
            return studio.interpolation(
                name, seeds=(a, b), photos=(photo1, photo2), detect_faces=detect, mix=fraction
            )

        walk_inputs = [run, seed_a, seed_b, photo_a, photo_b, detect_walk, mix]
        walk_outputs = [mixed, strip, gif]
        walk_button.click(_in_page(walk), walk_inputs, walk_outputs, api_name="interpolate")
        mix.release(_in_page(walk), walk_inputs, walk_outputs, api_visibility="private")

        def edit(name, s, photo, detect, *values):
            known = studio.attributes(name)
            chosen = {a: v for a, v in zip(attributes, values, strict=True) if a in known}
            return studio.edit(name, chosen, seed=s, photo=photo, detect_faces=detect)

        edit_inputs = [run, edit_seed, edit_photo, detect_edit, *sliders]
        edit_button.click(_in_page(edit), edit_inputs, edited, api_name="edit")
        for slider in sliders:
            slider.release(_in_page(edit), edit_inputs, edited, api_visibility="private")

        recon_button.click(
            _in_page(studio.reconstruct),
            [run, recon_photo, detect_recon],
            reconstruction,
            api_name="reconstruct",
        )

        def switch(name):
            """Everything that depends on the chosen run."""
            encoder = studio.has_encoder(name)
            samplers = studio.samplers(name)
            return [
                studio.describe(name),
                gr.update(choices=samplers, value=samplers[0]),
                gr.update(visible=encoder, value=None),
                gr.update(visible=encoder, value=None),
                _edit_note(studio, name),
                gr.update(visible=encoder, value=None),
                gr.update(visible=encoder),
                *[gr.update(visible=a in studio.attributes(name), value=0) for a in attributes],
                _recon_note(studio, name),
            ]

        run.change(
            _in_page(switch),
            run,
            [about, sampler, photo_a, photo_b, edit_note, edit_photo, detect_edit, *sliders,
             recon_note],
            api_visibility="private",
        )  # fmt: skip
    return app


def _seed(label: str, value: int, elem_id: str | None = None) -> gr.Number:
    return gr.Number(value, label=label, precision=0, minimum=0, maximum=MAX_SEED, elem_id=elem_id)


def _photo(label: str, visible: bool, elem_id: str | None = None) -> gr.File:
    # A file, not a gr.Image: Gradio decodes an Image upload itself and answers a file that
    # is not an image with a bare "Error" (and a traceback in the terminal); as a file, the
    # photo reaches facegen's reader, whose message the page shows.
    return gr.File(
        label=label,
        file_types=list(IMAGE_EXTENSIONS),
        type="filepath",
        visible=visible,
        height=120,
        elem_id=elem_id,
    )


def _end(which: str, seed: int, encoder: bool) -> tuple[gr.Number, gr.File]:
    with gr.Column():
        key = which.lower()
        return (
            _seed(f"Seed {which}", seed, elem_id=f"seed-{key}"),
            _photo(f"or photo {which}", encoder, elem_id=f"photo-{key}"),
        )


def _edit_note(studio: Studio, name: str) -> str:
    attributes = studio.attributes(name)
    if not attributes:
        return no_directions_message(studio.run(name))
    source = "a seed or an uploaded photo" if studio.has_encoder(name) else "a seed"
    return (
        f"Move a face from {source} along the direction of "
        f"{'each attribute' if len(attributes) > 1 else attributes[0]}; "
        "strengths are in standard deviations of the faces along the direction."
    )


def _recon_note(studio: Studio, name: str) -> str:
    if studio.has_encoder(name):
        return (
            "Upload a photo: it is framed as `facegen data prepare` frames faces, then encoded "
            "and decoded."
        )
    return f"{name} is a GAN: it has no encoder, so it cannot reconstruct photos: pick an AE or VAE"


def serve(
    studio: Studio,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    queue_size: int = 16,
    concurrency: int = 2,
    max_upload_mb: float = 10,
) -> tuple[gr.Blocks, str]:
    """Build the app and start serving it on ``host:port`` in the background; returns
    (app, local URL). ``app.block_thread()`` then waits until Ctrl-C, ``app.close()`` stops."""
    app = build_app(studio)
    # Each event runs ``concurrency`` requests at once; up to ``queue_size`` more wait.
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        quiet=True,
        prevent_thread_lock=True,
        max_file_size=round(max_upload_mb * 1024 * 1024),  # bytes
        footer_links=["api"],
    )
    return app, url
