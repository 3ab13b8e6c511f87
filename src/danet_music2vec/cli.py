"""``dm2v``: use the trained models on your own audio files.

    dm2v denoise song.wav -o clean.wav [--model models/separator.pt]   (default: the shipped separator)
    dm2v classify song.wav [--denoise] [--top 3] [--model models/music2vec.pt] [--adapted models/music2vec_adapted.pt]
                           [--separator models/separator.pt]
    dm2v kfp compile -o pipeline.yaml [--image REGISTRY/danet-music2vec:TAG]
    dm2v copy-runs --to http://mlflow.example:5000 [--from sqlite:///mlflow.db]
    dm2v promote [--name danet-music2vec] [--tracking-uri URI]

Any format libsndfile reads (wav, flac, ogg, au), any sample rate, mono or stereo.
`denoise` writes the music with the input's rate and channels (the masks come from the
channels' mean); `classify` mixes down to mono and resamples, and says which path answered: without
--denoise the clean-trained classifier on the file as it is (`mixture`), with --denoise the product's
path the pipeline chose (src/danet_music2vec/evidence.py). User mistakes (missing file or model,
unreadable audio, unsupported output format) print one line naming the file and the
fix, and exit with status 2; no traceback. The separator file carries the inference
settings the pipeline scored it with, so `dm2v denoise` gives the `separate` stage's audio.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from danet_music2vec.audio import AudioError, audio_info, load_audio, resample, save_audio
from danet_music2vec.errors import CheckpointError
from danet_music2vec.kfp_pipeline import DEFAULT_IMAGE
from danet_music2vec.separation.denoising import denoise, separate_music

EXIT_USER_ERROR = 2
WRITABLE = (".wav", ".flac", ".ogg")


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def _require_model(path: Path, stage: str, option: str) -> None:
    if not path.is_file():
        raise UserError(f"{path} not found: run `dvc repro {stage}` (or pass {option})")


def _native_rate(path: Path) -> int:
    """The file's own sample rate, so `denoise` writes at the rate it read."""
    try:
        return int(audio_info(path).samplerate)
    except Exception:  # noqa: BLE001 - the load_audio call that follows raises the precise AudioError
        return 22050


def _load_separator(path: Path | None, band_limited: bool):  # type: ignore[no-untyped-def]
    """The separator file at ``path``, or the shipped one when ``path`` is None."""
    # Imported here: `classify` without --denoise must not need the separator code.
    from danet_music2vec.separation import Separator

    overrides = {"output_rate": "stft"} if band_limited else {}
    return Separator.pretrained(**overrides) if path is None else Separator.load(path, **overrides)


def cmd_denoise(args: argparse.Namespace) -> int:
    model = Path(args.model) if args.model else None
    if model is not None:
        _require_model(model, "separate", "--model")
    out = Path(args.output)
    if out.suffix.lower() not in WRITABLE:
        raise UserError(f"{out}: unsupported output format '{out.suffix}'; name it .wav, .flac or .ogg")
    source = Path(args.input)
    rate = _native_rate(source)
    wave = load_audio(source, rate, check_silence=False, mono=False)  # (channels, samples)
    # Written at the input's rate and channels, whatever rate the separator worked at (band-limited with --band-limited).
    separator = _load_separator(model, args.band_limited)
    music = denoise(separator, wave, rate)
    samples = wave.shape[-1]
    clipped = save_audio(out, music, rate)
    note = f" ({clipped} samples clipped at full scale)" if clipped else ""
    print(f"{out}: denoised music ({separator.origin}), {samples / rate:.1f} s at {rate} Hz, {music.shape[0]} channel(s){note}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from danet_music2vec.classification import Classifier
    from danet_music2vec.evidence import GenreReader

    model = Path(args.model)
    _require_model(model, "train_music2vec", "--model")
    separator = Path(args.separator) if args.separator else None
    adapted = Path(args.adapted)
    if args.denoise:
        if separator is not None:
            _require_model(separator, "separate", "--separator")
        _require_model(adapted, "adapt_music2vec", "--adapted")
    if args.top < 1:
        raise UserError(f"--top {args.top}: must be at least 1")
    source = Path(args.input)
    if args.denoise:
        reader = GenreReader.load(model, adapted, device=args.device)
        rate = reader.clean.sample_rate
        wave = load_audio(source, rate, check_silence=False)
        loaded = _load_separator(separator, args.band_limited)
        music, music_rate = separate_music(loaded, wave, rate)
        proba, classes = reader.read(wave, resample(music, music_rate, rate), rate), reader.classes
        what = f"denoised by {loaded.origin}, path {reader.rule.path}: chosen on validation by adapt_music2vec"
    else:
        classifier = Classifier.from_checkpoint(model, device=args.device)
        rate = classifier.sample_rate
        wave = load_audio(source, rate, check_silence=False)
        proba, classes = classifier.predict_proba(wave, rate), classifier.classes
        what = "path mixture: the clean-trained classifier on the file as it is"
    print(f"{source} ({len(wave) / rate:.1f} s, {what}):")
    for i in np.argsort(-proba, kind="stable")[: args.top]:
        print(f"  {classes[i]:<16s} {proba[i]:6.3f}")
    return 0


class _Renamed(argparse.Action):
    """An option that was renamed: one line naming the new one (argparse's usage error, exit 2)."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:  # fmt: skip
        parser.error(f"{option_string} was renamed to {self.new}")


def _env_pair(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return text


def cmd_kfp_compile(args: argparse.Namespace) -> int:
    # Imported here: the kfp SDK is needed by this command only.
    from danet_music2vec.kfp_pipeline.compiler import compile_pipeline
    from danet_music2vec.kfp_pipeline.dvc_stages import DvcYamlError
    from danet_music2vec.params import ParamError

    env = dict(item.split("=", 1) for item in args.env)
    for path in (Path(args.dvc_yaml), Path(args.params)):
        if not path.is_file():
            raise UserError(f"{path} not found: run from the repository root (or pass --dvc-yaml/--params)")
    try:
        out = compile_pipeline(args.output, args.dvc_yaml, args.params, args.image, env)
    except (DvcYamlError, ParamError) as err:
        raise UserError(str(err)) from None
    print(f"{out}: Kubeflow pipeline of {args.dvc_yaml}'s stages, image {args.image}")
    return 0


def cmd_copy_runs(args: argparse.Namespace) -> int:
    # Imported here: the audio commands must not pay for mlflow's import.
    from danet_music2vec.errors import TrackingError
    from danet_music2vec.tracking import copy_runs

    source = args.source or f"sqlite:///{Path('mlflow.db').resolve()}"
    if source.startswith("sqlite:///") and not Path(source.removeprefix("sqlite:///")).is_file():
        raise UserError(f"{source}: no such MLflow store; run from the repository that has mlflow.db (or pass --from)")
    try:
        copied, already = copy_runs(source, args.target)
    except TrackingError as err:
        raise UserError(str(err)) from None
    print(f"{args.target}: copied {copied} runs from {source} ({already} copied before)")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    # Imported here: the audio commands must not pay for mlflow's import.
    from danet_music2vec.errors import TrackingError
    from danet_music2vec.tracking import tracking_uri
    from danet_music2vec.tracking.registry import promote

    uri = args.tracking_uri or tracking_uri(Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise UserError(f"{uri}: no such MLflow store; run from the repository that has mlflow.db (or pass --tracking-uri)")
    try:
        promotion = promote(args.name, uri)
    except TrackingError as err:
        raise UserError(str(err)) from None
    print("\n".join(promotion.report()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dm2v", description="Denoise music and classify its genre with the trained models.")
    sub = parser.add_subparsers(dest="command", required=True)

    denoise = sub.add_parser("denoise", help="remove environmental noise from a music file (the separator)")
    denoise.add_argument("input", help="audio file (wav, flac, ogg, au; any rate, mono or stereo)")
    denoise.add_argument("-o", "--output", required=True, help="where to write the denoised music (.wav, .flac, .ogg)")
    denoise.add_argument("--model", help="separator file, e.g. models/separator.pt from `dvc repro` (default: the separator "
                         "shipped with the package)")
    denoise.add_argument(
        "--band-limited", action="store_true", help="return the separator's 8 kHz output (as the original) instead of masking at the file's rate"
    )
    denoise.set_defaults(func=cmd_denoise)

    classify = sub.add_parser("classify", help="print the most probable genres of a music file (music2vec)")
    classify.add_argument("input", help="audio file (wav, flac, ogg, au; any rate, mono or stereo)")
    classify.add_argument("--denoise", action="store_true", help="remove noise with the separator first")
    classify.add_argument("--band-limited", action="store_true", help="with --denoise: classify the separator's 8 kHz output")
    classify.add_argument("--top", type=int, default=3, help="how many genres to print (default: %(default)s)")
    classify.add_argument("--model", default="models/music2vec.pt", help="the clean-trained music2vec (default: %(default)s)")
    classify.add_argument("--adapted", default="models/music2vec_adapted.pt",
                          help="with --denoise: the adapted music2vec and its rule (default: %(default)s)")
    classify.add_argument("--separator", help="separator file for --denoise (default: the shipped separator)")
    classify.add_argument("--danet", action=_Renamed, new="--separator", help=argparse.SUPPRESS)
    classify.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="for music2vec (default: %(default)s)")
    classify.set_defaults(func=cmd_classify)

    kfp = sub.add_parser("kfp", help="the DVC stages as a Kubeflow pipeline")
    kfp_sub = kfp.add_subparsers(dest="kfp_command", required=True)
    compile_ = kfp_sub.add_parser("compile", help="compile dvc.yaml and params.yaml into a KFP v2 pipeline (YAML)")
    compile_.add_argument("-o", "--output", required=True, help="where to write the compiled pipeline (e.g. pipeline.yaml)")
    compile_.add_argument("--image", default=DEFAULT_IMAGE, help="the project image every step runs in (default: %(default)s)")
    compile_.add_argument(
        "--env", action="append", default=[], type=_env_pair, metavar="NAME=VALUE",
        help="set in every step, e.g. MLFLOW_TRACKING_URI=http://mlflow:5000 (repeatable)",
    )  # fmt: skip
    compile_.add_argument("--dvc-yaml", default="dvc.yaml", help="default: %(default)s")
    compile_.add_argument("--params", default="params.yaml", help="default: %(default)s")
    compile_.set_defaults(func=cmd_kfp_compile)

    copy = sub.add_parser("copy-runs", help="copy the runs of a local mlflow.db to a tracking server (again: only new runs)")
    copy.add_argument("--to", dest="target", required=True, help="tracking URI to copy to, e.g. http://mlflow.example:5000")
    copy.add_argument("--from", dest="source", help="tracking URI to copy from (default: sqlite:///<cwd>/mlflow.db)")
    copy.set_defaults(func=cmd_copy_runs)

    from danet_music2vec.tracking.registry import RULE

    promote = sub.add_parser(
        "promote", help="register the best packaged pipeline run and point the alias 'champion' at it",
        description=f"Rule: {RULE}. The alias moves only when a better run exists; run it again any time.",
    )  # fmt: skip
    promote.add_argument("--name", default="danet-music2vec", help="registered model name (default: %(default)s)")
    promote.add_argument(
        "--tracking-uri", help="tracking store, e.g. http://mlflow:5000 (default: MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)"
    )
    promote.set_defaults(func=cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dm2v`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)  # argparse exits with 2 on usage errors
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("dm2v: error: --device cuda: no CUDA GPU is available; use --device cpu", file=sys.stderr)
            return EXIT_USER_ERROR
    try:
        return int(args.func(args))
    except (UserError, AudioError, CheckpointError) as err:
        print(f"dm2v: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
