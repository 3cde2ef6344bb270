"""The web page of ``softdimo serve``: a Gradio app over a :class:`~softdimo.serve.models.ModelPool`.

Two tabs, each also an HTTP API endpoint (``gradio_client.Client(url).predict(…, api_name=…)``):

* **Compare** (``/compare``): a teacher folder at N steps (slider) and CFG, and one-step student
  folders, on the same labels or prompts and seed; a gallery with the models side by side (one
  grid each, the same condition at the same place), each captioned with its measured time per
  image, a table of the timings and the speed-up over the teacher, and the same numbers as JSON;
* **TTEO** (``/tteo``): a one-step student drawn plainly and with TTEO + best-of-N (sliders for
  the SGD steps and N); both grids, the rewards' means and the time per image.

Models are chosen from the checkpoints folder or typed as paths (any teacher or student folder).
Gradio is an optional dependency (``pip install -e ".[serve]"``); it is imported when the app is
built.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import SoftdimoError
from ..imageio import make_grid, to_uint8
from .models import Generation, ModelPool

INSTALL_HINT = 'pip install -e ".[serve]"  (Gradio)'
SCALE = 4  # display magnification of the tiny images (nearest neighbour)
MAX_COLUMNS = 4  # models side by side on the Compare tab (fewer models: as many columns; more: a next row)
LAUNCH_TRIES = 3  # start-up checks of the page before giving up (see start)
TTEO_PROMPTS = "a photo of a red 3\na photo of two 7s\na photo of a 4 left of a 9"


@dataclass
class ServeConfig:
    """What `softdimo serve` serves and where."""

    checkpoints: str = ""  # folder of generator folders to offer ("" = the project's checkpoints/)
    host: str = "127.0.0.1"
    port: int = 7860  # 0 = any free port
    device: str = "auto"  # auto | cpu | cuda
    teacher: str = ""  # teacher preselected on the page ("" = the first one found)
    students: list[str] = field(default_factory=list)  # students preselected ([] = the teacher's own)


def model_grid(g: Generation) -> np.ndarray:
    """One model's images as one near-square grid (in condition order), magnified for the page (HWC uint8).

    Every model of a request has the same conditions and so the same layout: the image at a given
    place of each grid answers the same label or prompt.
    """
    grid = make_grid(g.images)  # ceil(sqrt(n)) per row
    arr = to_uint8(grid)
    arr = np.repeat(np.repeat(arr, SCALE, axis=0), SCALE, axis=1)
    return arr if arr.ndim == 3 else np.stack([arr] * 3, axis=-1)


def caption(g: Generation) -> str:
    return f"{g.label}: {1e3 * g.seconds_per_image:.1f} ms / image"  # the table gives the rest


def timing_table(gens: list[Generation]) -> str:
    """Markdown: each model's time per image and its speed-up over the first (the teacher)."""
    if not gens:
        return ""
    base = gens[0].seconds_per_image
    lines = ["| model | sampler | ms / image | speed-up vs first row |", "|---|---|---|---|"]
    for g in gens:
        steps = g.sampler.get("steps")
        sampler = f"{steps} step{'s' if steps != 1 else ''}" if steps is not None else "?"
        if g.sampler.get("cfg_scale") not in (None, 1, 1.0):
            sampler += f", CFG {g.sampler['cfg_scale']:g}"
        lines.append(f"| {g.label} | {sampler} | {1e3 * g.seconds_per_image:.2f} | "
                     f"{base / g.seconds_per_image:.1f}× |")
    return "\n".join(lines) + "\n\nTimes are the wall time of this request (after a warm-up draw when the model " \
                              "was loaded), divided by the number of images."


def build_app(pool: ModelPool, config: ServeConfig) -> Any:
    """The Gradio Blocks app (module docstring)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local page: nothing is sent anywhere
    try:
        import gradio as gr  # optional dependency (the serve extra): only this command needs it
    except ImportError as e:
        raise SoftdimoError(f"softdimo serve needs Gradio, which is not installed: {INSTALL_HINT}.") from e

    teachers = pool.teachers()
    teacher0 = config.teacher or (teachers[0] if teachers else "")
    students0 = config.students or (pool.students(teacher0) if teacher0 else [])
    all_students = pool.students()
    text_students = [str(e.path) for e in pool.entries() if e.role == "student" and e.cond == "text"]
    tteo_student = (text_students or all_students or [""])[-1]  # TTEO's rewards read digit-world prompts
    tteo_cond = "text" if tteo_student in text_students else "class"

    def compare(teacher: str, students: list[str] | None, text: str, steps: float, cfg: float, seed: float,
                per_condition: float) -> tuple[list, str, dict]:
        try:
            gens = pool.compare(teacher or None, list(students or []), text, int(steps), float(cfg), int(seed),
                                int(per_condition))
        except SoftdimoError as e:
            raise gr.Error(str(e)) from e
        return ([(model_grid(g), caption(g)) for g in gens], timing_table(gens),
                {"models": [g.summary() for g in gens], "conditions": gens[0].conditions})

    def run_tteo(student: str, text: str, iters: float, best_of: float, seed: float) -> tuple[list, str, dict]:
        try:
            plain, tuned, scores = pool.tteo(student, text, int(iters), int(best_of), int(seed))
        except SoftdimoError as e:
            raise gr.Error(str(e)) from e
        lines = ["| images | " + " | ".join(next(iter(scores.values()))) + " | ms / image |",
                 "|---|" + "---|" * (len(next(iter(scores.values()))) + 1)]
        for (name, sc), g in zip(scores.items(), (plain, tuned)):
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in sc.values()) +
                         f" | {1e3 * g.seconds_per_image:.1f} |")
        text_out = "\n".join(lines) + "\n\nMean reward of the shown images (higher is better); TTEO optimises the " \
                                      "student's input embedding, its weights never change."
        return ([(model_grid(plain), caption(plain)), (model_grid(tuned), caption(tuned))], text_out,
                {"models": [plain.summary(), tuned.summary()], "rewards": scores})

    with gr.Blocks(title="softdimo: one step vs N steps", analytics_enabled=False) as app:
        gr.Markdown("# softdimo: one-step students vs their N-step teacher\n"
                    "Pick a teacher and its one-step students (or type any teacher or student folder), type labels "
                    "(class models, e.g. `0, 3, 7`) or prompts (text models, one per line), and generate. Every "
                    "row uses the same conditions and seed; the captions give each model's measured time per image.")
        with gr.Tab("Compare"):
            with gr.Row():
                teacher = gr.Dropdown(teachers, value=teacher0, label="Teacher folder (N steps)",
                                      allow_custom_value=True)
                students = gr.Dropdown(all_students, value=students0, multiselect=True, allow_custom_value=True,
                                       label="One-step student folders")
            text = gr.Textbox("0, 1, 2, 3, 4, 5, 6, 7, 8, 9", lines=3,
                              label="Labels (class models) or prompts, one per line (text models)")
            with gr.Row():
                steps = gr.Slider(1, 32, value=16, step=1, label="Teacher steps N")
                cfg = gr.Slider(1.0, 5.0, value=2.0, step=0.5, label="Teacher CFG scale")
                per = gr.Slider(1, 4, value=1, step=1, label="Images per condition")
                seed = gr.Number(0, precision=0, label="Seed")
            go = gr.Button("Generate", variant="primary", elem_id="compare-button")
            gallery = gr.Gallery(label="Samples (one grid per model, the same conditions at the same places)",
                                 columns=MAX_COLUMNS, fit_columns=True, format="png", object_fit="contain",
                                 elem_id="compare-gallery")
            table = gr.Markdown(elem_id="compare-table")
            numbers = gr.JSON(label="Timings", visible=False)
            go.click(compare, [teacher, students, text, steps, cfg, seed, per], [gallery, table, numbers],
                     api_name="compare")
        with gr.Tab("TTEO"):
            t_student = gr.Dropdown(all_students, value=tteo_student, allow_custom_value=True,
                                    label="One-step student folder")
            t_text = gr.Textbox(TTEO_PROMPTS if tteo_cond == "text" else "3, 7", lines=3,
                                label="Labels (class models) or prompts, one per line (text models)")
            with gr.Row():
                iters = gr.Slider(0, 8, value=2, step=1, label="TTEO SGD steps")
                best_of = gr.Slider(1, 8, value=4, step=1, label="Best of N")
                t_seed = gr.Number(0, precision=0, label="Seed")
            t_go = gr.Button("Run TTEO", variant="primary", elem_id="tteo-button")
            t_gallery = gr.Gallery(label="One step vs TTEO + best-of-N", columns=2, format="png", object_fit="contain",
                                   elem_id="tteo-gallery")
            t_table = gr.Markdown(elem_id="tteo-table")
            t_numbers = gr.JSON(label="Rewards", visible=False)
            t_go.click(run_tteo, [t_student, t_text, iters, best_of, t_seed], [t_gallery, t_table, t_numbers],
                       api_name="tteo")
    return app


def resolve_device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def start(app: Any, host: str = "127.0.0.1", port: int | None = None, tries: int = LAUNCH_TRIES) -> str:
    """Serve ``app`` on ``host:port`` (None: any free port) without blocking; its URL.

    Gradio checks that the page answers within 3 s once its server is up, and otherwise refuses
    to serve without a public link; on a busy machine that check is retried (the server closed
    and started again) rather than failing the command.
    """
    for attempt in range(1, tries + 1):
        try:
            _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                                   share=False, footer_links=["api"])
            return url
        except ValueError as e:
            if "localhost is not accessible" not in str(e):
                raise
            app.close(verbose=False)
            if attempt == tries:
                raise SoftdimoError(f"the page did not answer on http://{host}:{port or '<free port>'} within Gradio's "
                                    f"3 s start-up check ({tries} tries): the machine is busy, or a proxy intercepts "
                                    f"local addresses (set no_proxy=localhost,127.0.0.1).") from e
    raise AssertionError("unreachable")


def launch(config: ServeConfig, block: bool = True) -> tuple[Any, str]:
    """Build the app and serve it on ``config.host:config.port``; returns (app, url)."""
    pool = ModelPool(config.checkpoints or None, resolve_device(config.device))
    app = build_app(pool, config)
    url = start(app, config.host, config.port or None)
    if block:
        print(f"softdimo serve: {url} (checkpoints: {pool.checkpoints}; Ctrl+C to stop)", flush=True)
        app.block_thread()
    return app, url


__all__ = ["ServeConfig", "build_app", "start", "launch", "model_grid", "timing_table", "INSTALL_HINT"]
