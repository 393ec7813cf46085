"""The `hai pack` and `hai keygen` commands (on cli_app.py's `app`): shipping an artifact elsewhere, a
bundle of it with the minimal runtime, and the keys that sign it.

Rule: as in model_commands.py, commands parse options and print; hai_compiler/pack.py bundles,
runtime/signing.py makes keys. A `HaiError` becomes one `error: ...` line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hai_compiler.cli_app import app, example, reported_errors
from hai_compiler.cli_options import ArtifactArg


@app.command("pack", epilog=example("hai pack model.hai -o bundle/"))
def pack_command(
    artifact: ArtifactArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle folder to write.")],
    microbench: Annotated[
        bool,
        typer.Option(
            "--microbench",
            help="Also bundle the device microbenchmarks, compiled for the artifact's target: "
            "`python measure_device.py` measures the device without the compiler.",
        ),
    ] = False,
) -> None:
    """Bundle ARTIFACT with the minimal runtime: a folder that runs where only numpy and
    apache-tvm-ffi are installed (`pip install -r requirements.txt`, then `python run_model.py`)."""
    from hai_compiler.microbench import Sizes
    from hai_compiler.pack import pack

    with reported_errors():
        bundle = pack(artifact, output, microbench=Sizes() if microbench else None)
    typer.echo(f"{bundle}: pip install -r {bundle / 'requirements.txt'}; python {bundle / 'run_model.py'}")


@app.command(
    "keygen", epilog=example("hai keygen release && hai compile model.onnx --sign release.key -o m.hai")
)
def keygen_command(
    stem: Annotated[
        Path, typer.Argument(metavar="NAME", help="Writes NAME.key (private, mode 0600) and NAME.pub.")
    ],
) -> None:
    """Make an Ed25519 key pair for signed artifacts: `hai compile --sign NAME.key`, then
    `hai run --trusted-key NAME.pub` (or runtime.load(..., trusted_keys=[...])) refuses anything else."""
    from runtime.signing import generate_key_files

    with reported_errors():
        private, public = generate_key_files(stem)
    typer.echo(f"{private}: private key, keep it secret (hai compile --sign {private})")
    typer.echo(f"{public}: public key, give it to whoever runs the artifacts (--trusted-key {public})")
