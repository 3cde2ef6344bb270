"""The ``softdimo`` command line.

``softdimo COMMAND --config configs/….yaml [dotted.key=value …] [--resume]``. Training commands
share one handler: load and validate the typed config, prepare the run folder, run the shared
training loop, print where ``final/`` is. User mistakes raise :class:`SoftdimoError`, printed as
one paragraph with exit status 2 (never a bare traceback); a training run that fails (a crash, a
full disk) prints which checkpoint is intact and exits with status 3. Any other error is a bug: one
line and status 1, its traceback only with ``--debug``. Every command takes ``--allow-pickle``, the
opt-in to pickle-based weights files (safetensors only otherwise), and ``--debug``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from .bench import BenchConfig, format_table, parse_int_list, parse_students, run_bench
from .config import DataConfig, load_config, load_data_config, resolve_device, to_dict
from .data.prompts import read_prompts_file
from .demo import run_demo
from .dryrun import plan_for
from .errors import SoftdimoError
from .evaluate import evaluate
from .files import check_writable
from .pretrained import pickle_allowed
from .report import ReportOptions, build_report
from .results import now, write_results
from .run import DRY_RUN_COMMANDS, TRAIN_COMMANDS, TrainCommand, export_checkpoint, run_training  # noqa: F401
from .sample import SampleRequest, SamplingOptions, parse_labels, run_sample
from .serve import ModelPool, ServeConfig, launch
from .teachers.maskgit_convert import convert_maskgit
from .tteo import TTEORequest, load_tteo_config, run_tteo


def _cmd_dry_run(args: argparse.Namespace) -> int:
    """Print the memory plan of a training command (models built on the meta device; nothing trains)."""
    cfg_cls, _ = TRAIN_COMMANDS[args.command].load()
    print(plan_for(args.command, load_config(cfg_cls, args.config, args.overrides)).table())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", False):
        return _cmd_dry_run(args)
    result = run_training(args.command, args.config, args.overrides, args.resume, not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.command}: {result.steps} steps in {result.seconds:.0f}s; model saved to {result.final_dir}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise SoftdimoError(f"--threads must be ≥ 1; got {args.threads}.")
        torch.set_num_threads(args.threads)
    out = export_checkpoint(args.run, args.out, step=args.step, weights=args.weights, command=args.command_name)
    print(f"export: {args.run} checkpoint ({args.weights} weights) written to {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out", folder=True)
    run_demo(out_dir=args.out, size="tiny" if args.tiny else "full" if args.full else "default",
             progress=not args.no_progress)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise SoftdimoError(f"--port must be in [0, 65535] (0: any free port); got {args.port}.")
    resolve_device(args.device)
    if args.checkpoints and not Path(args.checkpoints).is_dir():
        raise SoftdimoError(f"--checkpoints {args.checkpoints} is not a folder; give a folder of teacher and "
                            f"student folders (default: the project's checkpoints/).")
    pool = ModelPool(args.checkpoints or None)
    for flag, path in [("--teacher", args.teacher)] + [("--students", s) for s in args.students or []]:
        if path:
            pool.resolve(path)  # DataError naming the path when it is not a generator folder
    try:
        launch(ServeConfig(checkpoints=args.checkpoints, host=args.host, port=args.port, device=args.device,
                           teacher=args.teacher or "", students=args.students or []))
    except OSError as e:  # the address is taken or cannot be used
        raise SoftdimoError(f"could not serve on --host {args.host} --port {args.port} ({e}); choose another "
                            f"--port (0: any free one).") from e
    return 0


def eval_data(name: str | None, config: str | None) -> DataConfig:
    """The reference data of ``eval``: ``--data NAME`` with its defaults, or the ``data:`` section of
    ``--data-config`` (e.g. the slots layout of the digit world); both must name the same dataset."""
    if config is None:
        return DataConfig(dataset=name or "mnist")  # type: ignore[arg-type]
    data = load_data_config(config)
    if name is not None and name != data.dataset:
        raise SoftdimoError(f"--data {name} but --data-config {config} describes dataset {data.dataset!r}; "
                            f"pass one of them, or both naming the same dataset.")
    return data


def _cmd_eval(args: argparse.Namespace) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    data = eval_data(args.data, args.data_config)
    if args.json:
        check_writable(args.json, "--json")
    started = now()

    prompts = None
    if args.prompts_file:
        texts, prompts = read_prompts_file(args.prompts_file)
        if prompts is None:  # plain text: no metadata, so nothing for the geneval scorer to check
            prompts = [{"prompt": t} for t in texts]
            if "geneval" in metrics:
                raise SoftdimoError(f"--metrics geneval needs GenEval metadata: pass a .jsonl --prompts-file "
                                    f"(one metadata object per line), not {args.prompts_file}.")
    sampling = SamplingOptions(steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature)
    out = evaluate(args.model, metrics, args.num, data, batch_size=args.batch_size, seed=args.seed,
                   progress=not args.no_progress,
                   sampling=None if sampling == SamplingOptions() else sampling, prompts=prompts)
    if out is None:  # a rank other than 0 of `torchrun … eval`: it drew its share of the images
        return 0
    if args.json:
        write_results(args.json, f"eval:{out['source']}", out,
                      config={"model": args.model, "metrics": metrics, "num": args.num,
                              "data": to_dict(data), "seed": args.seed, "steps": args.steps,
                              "prompts_file": args.prompts_file,
                              "cfg": args.cfg, "temperature": args.temperature},
                      started=started, seconds=out["seconds"])
    for k, v in out.items():
        print(f"{k:>18}: {v:.4f}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    req = SampleRequest(model=args.model, out=args.out,
                        options=SamplingOptions(steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature),
                        labels=parse_labels(args.labels) if args.labels is not None else None,
                        prompts=args.prompts, prompts_file=args.prompts_file, num=args.num, seed=args.seed,
                        batch_size=args.batch_size, nrow=args.nrow, overwrite=args.overwrite, device=args.device)
    out = run_sample(req, progress=not args.no_progress)
    print(f"sample: {out['num']} images from a {out['kind']} ({out.get('steps', '?')} steps, "
          f"cfg {out.get('cfg_scale', '?')}) in {out['seconds']:.1f}s -> {out['out']}")
    return 0


def _cmd_tteo(args: argparse.Namespace) -> int:
    cfg = load_tteo_config(args.config, args.overrides, iters=args.iters, best_of=args.best_of, lr=args.lr)
    req = TTEORequest(model=args.model, out=args.out,
                      labels=parse_labels(args.labels) if args.labels is not None else None,
                      prompts=args.prompts, prompts_file=args.prompts_file, num=args.num, seed=args.seed,
                      batch_size=args.batch_size, nrow=args.nrow, overwrite=args.overwrite, device=args.device)
    out = run_tteo(req, cfg, progress=not args.no_progress)
    scores = ", ".join(f"{k} {out['untouched_scores'][k]:.3f} -> {v:.3f}" for k, v in out["selected_scores"].items())
    print(f"tteo: {out['num']} images ({cfg.iters} SGD steps, lr {cfg.lr}, best of {cfg.best_of}) in "
          f"{out['seconds']:.1f}s -> {out['out']}; mean reward (one plain draw -> selected): {scores}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 0:
        raise SoftdimoError(f"--threads must be ≥ 0 (0: torch's default); got {args.threads}.")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(teacher=args.teacher, students=parse_students(args.students),
                      batch_sizes=parse_int_list(args.batch_sizes, "--batch-sizes"),
                      steps=parse_int_list(args.steps, "--steps"), cfg_scale=args.cfg, repeats=args.repeats,
                      warmup=args.warmup, seed=args.seed, device=args.device,
                      max_seconds_per_call=args.max_seconds_per_call)
    if args.json:
        check_writable(args.json, "--json")
    started, t0 = now(), time.time()
    metrics = run_bench(cfg)
    if args.json:
        write_results(args.json, "speed", metrics, config=asdict(cfg), started=started, seconds=time.time() - t0)
    print(format_table(metrics))
    if args.json:
        print(f"bench: wrote {args.json}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    out = convert_maskgit(args.src, args.dst, variant=args.variant, heads=args.heads, overwrite=args.overwrite,
                          allow_pickle=args.allow_pickle)
    print(f"convert: {args.kind} teacher written to {out} (safetensors; load it with teacher={out} or --model {out})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out", folder=True)
    out = build_report(ReportOptions(results=args.results, out=args.out, grids=args.grids,
                                     checkpoints=args.checkpoints, device=args.device, seed=args.seed))
    print(f"report: {out.sections} sections, {out.numbers} numbers, {len(out.not_measured)} results files not yet "
          f"measured -> {out.markdown}, {out.html}")
    return 0


ALLOW_PICKLE_HELP = ("also accept pickle-based weights (.bin/.pt/.ckpt), read with torch.load(weights_only=True); "
                     "only for files you trust (default: safetensors only)")
DEBUG_HELP = "on an error, show the Python traceback too"


def _add_image_output_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    """The options `sample` and `tteo` share for drawing and writing images."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--nrow", type=int, help="images per grid row (default: the number of distinct conditions)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing grid / samples in --out")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softdimo",
        description="One-step masked-diffusion image generators (Di[M]O) improved with soft embeddings.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, tc in TRAIN_COMMANDS.items():
        p = sub.add_parser(name, help=tc.help)
        p.add_argument("--config", help="YAML preset (e.g. configs/mnist/tokenizer.yaml)")
        p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name in DRY_RUN_COMMANDS:
            p.add_argument("--dry-run", action="store_true",
                           help="print parameter counts and estimated memory at train.batch_size and "
                                "train.mixed_precision (models built on the meta device, no weights loaded), then exit")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=10")
        p.set_defaults(func=_cmd_train)
    p = sub.add_parser("export", help="a checkpoint-N/ of a training run -> the model folder its final/ would be")
    p.add_argument("run", help="run folder, <train.out_dir>/<command>/<train.run_name>")
    p.add_argument("--out", required=True, help="model folder to write (new or empty)")
    p.add_argument("--step", type=int, help="which checkpoint-N/ (default: the newest)")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="the EMA weights, as final/ holds them (default), or the live ones")
    p.add_argument("--command", dest="command_name", choices=list(TRAIN_COMMANDS),
                   help="the training command of the run (default: the name of the run folder's parent)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("eval", help="metrics of a model, an image folder or a dataset split")
    p.add_argument("--model", required=True,
                   help="generator folder, folder of images, or data:NAME[:SPLIT] (floors)")
    p.add_argument("--metrics", default="fid,pr", help="comma-separated: fid,pr,domain_fid,classifier_score,geneval")
    p.add_argument("--num", "--num-images", dest="num", type=int, default=2000,
                   help="number of evaluated images N (under torchrun write --num-images: torchrun takes --num itself)")
    p.add_argument("--data", choices=["mnist", "fashion", "world"],
                   help="reference dataset (its test split; default mnist)")
    p.add_argument("--data-config", help="YAML whose data: section sets the reference data, e.g. the "
                                         "model's training config (configs/world/teacher.yaml)")
    p.add_argument("--prompts-file", help="text generators: prompts to draw instead of the held-out set (.jsonl of "
                                          "GenEval metadata for geneval, e.g. the paraphrased held-out set; or .txt)")
    p.add_argument("--json", help="write a results JSON here")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="sampler steps of a generator model (default: its own)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale of a generator model")
    p.add_argument("--temperature", type=float, help="token temperature of a generator model")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("sample", help="images from a teacher (--steps N) or a one-step generator")
    p.add_argument("--model", required=True, help="teacher or student folder (<run dir>/final of train-teacher or distill)")
    p.add_argument("--out", required=True, help="folder of PNGs (+ metadata.jsonl), or one grid if it ends in .png")
    p.add_argument("--steps", type=int, help="sampler steps N (default: the model's own, 16 for teachers)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: the model's own)")
    p.add_argument("--temperature", type=float, help="token sampling temperature (default: the model's own)")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--labels", help="comma-separated class ids, e.g. 0,1,2 (class models)")
    cond.add_argument("--prompts", nargs="+", help="one or more prompts (text models)")
    cond.add_argument("--prompts-file", help=".jsonl of GenEval metadata with 'prompt', or .txt, one prompt a line")
    p.add_argument("--num", type=int, help="number of images; the labels/prompts are cycled (default: their "
                                             "number, or 16 over all classes / the held-out prompts)")
    _add_image_output_args(p, batch_size=64)
    p.set_defaults(func=_cmd_sample)
    p = sub.add_parser("bench", help="speed and memory: teacher N steps (with/without CFG) vs one-step students")
    p.add_argument("--teacher", required=True, help="teacher folder (e.g. checkpoints/teacher-mnist)")
    p.add_argument("--students", nargs="*", help="NAME=FOLDER items (comma- or space-separated) of one-step students")
    p.add_argument("--batch-sizes", default="1,4,16,64,256", help="comma-separated batch sizes")
    p.add_argument("--steps", default="1,2,4,8,16", help="comma-separated teacher step counts N")
    p.add_argument("--cfg", type=float, default=2.0, help="guidance scale of the guided teacher rows (unguided rows: 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row and batch size (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per row and batch size")
    p.add_argument("--max-seconds-per-call", type=float, help="skip a row's larger batches once a call took longer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", help="write the results JSON here (e.g. benchmarks/results/speed.json)")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("convert", help="published weights of a real teacher -> a safetensors teacher folder")
    p.add_argument("--kind", required=True, choices=["maskgit"],
                   help="maskgit: MaskGIT-pytorch's MaskGIT_ImageNet_<variant>.pth + VQGAN last.ckpt + model.yaml")
    p.add_argument("src", help="folder holding the published files (directly, or in MaskGIT/ and VQGAN/)")
    p.add_argument("dst", help="teacher folder to write (teacher.json, mdm/, tokenizer/)")
    p.add_argument("--variant", type=int, default=256, choices=[256, 512],
                   help="which transformer file: MaskGIT_ImageNet_<variant>.pth (default 256)")
    p.add_argument("--heads", type=int, default=16,
                   help="attention heads (not stored in the weights; the released models use 16)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty DST")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read the published .pth/.ckpt pickles with torch.load(weights_only=True) (required: "
                        "they exist only as pickles; the converted folder needs no pickle)")
    p.set_defaults(func=_cmd_convert)
    p = sub.add_parser("report", help="Markdown + self-contained HTML report from results JSON")
    p.add_argument("--results", default="benchmarks/results", help="folder of results JSON files")
    p.add_argument("--out", default="report", help="output folder (report.md, report.html, assets/)")
    p.add_argument("--grids", action=argparse.BooleanOptionalAction, default=True,
                   help="draw side-by-side sample grids from the checkpoints (needs sampling; --no-grids skips)")
    p.add_argument("--checkpoints", default="checkpoints", help="folder of the shipped models used by the grids")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample grids")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("tteo", help="test-time embedding optimisation + best-of-N of a one-step student")
    p.add_argument("--model", required=True, help="one-step student folder (distill / refine <run dir>/final)")
    p.add_argument("--out", required=True, help="folder of PNGs (+ samples.json with every candidate's scores), "
                                                "or one grid if it ends in .png")
    p.add_argument("--config", help="YAML preset of the rewards and knobs (e.g. configs/world/tteo.yaml; "
                                    "default: the shipped mini-CLIP + attribute rewards)")
    p.add_argument("--iters", type=int, help="SGD steps on the input embedding (default 4)")
    p.add_argument("--best-of", type=int, help="N candidates per condition, best by composite z-score (default 4)")
    p.add_argument("--lr", type=float, help="SGD learning rate (default 0.2)")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--labels", help="comma-separated class ids (class students; rewards read 'a photo of a 3')")
    cond.add_argument("--prompts", "--prompt", nargs="+", help="one or more prompts (text students)")
    cond.add_argument("--prompts-file", help=".jsonl of GenEval metadata with 'prompt', or .txt, one prompt a line")
    p.add_argument("--num", type=int, help="number of images; the labels/prompts are cycled")
    _add_image_output_args(p, batch_size=16)
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. soft_temperature=0.5")
    p.set_defaults(func=_cmd_tteo)
    p = sub.add_parser("demo", help="the main job on the embedded default (small budget)")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's outputs")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="seconds-long version (used by the tests)")
    size.add_argument("--full", action="store_true", help="benchmark-size version: the presets' step counts, "
                                                          "N = 2000 (hours on a CPU)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("serve", help="a local web page: a teacher at N steps vs its one-step students, and TTEO "
                                     "(needs the serve extra: Gradio)")
    p.add_argument("--checkpoints", default="", help="folder of teacher and student folders to offer "
                                                     "(default: the project's checkpoints/)")
    p.add_argument("--teacher", help="teacher folder preselected on the page")
    p.add_argument("--students", nargs="*", help="student folders preselected on the page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_serve)
    for p in sub.choices.values():  # options every command shares
        p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
        with contextlib.suppress(argparse.ArgumentError):  # a command with its own --allow-pickle help keeps it
            p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    return parser


def _leave_process_group() -> bool:
    """Under torchrun: every process waits for the others, then the process group is closed.

    Returns whether there was a group. A worker then exits at once (:func:`main`): with gloo,
    torch's background threads can abort a process during interpreter shutdown ("terminate called
    without an active exception") after all its work is done and written.
    """
    if "torch.distributed" not in sys.modules:
        return False

    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # overrides may come before or after flags: collect the leftovers as overrides
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]

    try:
        with pickle_allowed(getattr(args, "allow_pickle", False)):
            rc = args.func(args)
        if _leave_process_group():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        return rc
    except SoftdimoError as e:
        if args.debug:
            raise
        print(f"softdimo {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)  # 2: bad input; 3: a run that failed (see train.faults)
    except KeyboardInterrupt:
        print(f"softdimo {args.command}: interrupted; the newest checkpoint-N/ is intact "
              f"(continue with --resume).", file=sys.stderr)
        return 130
    except Exception as e:  # not a user mistake softdimo knows of: a bug
        if args.debug:
            raise
        print(f"softdimo {args.command}: internal error ({type(e).__name__}: {e}). This is a bug in softdimo; "
              f"run the command again with --debug to see the traceback.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
