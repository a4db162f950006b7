"""The app command: resolve the model source -> build_demo -> launch (wiring only).

    vaegan-app [--model DIR_OR_REPO] [--host H] [--port P] [--share]     # or: python app.py ... in a checkout

It imports what serving needs and no more (no torchvision, no umap): the page starts in about
the time of importing torch and gradio. Its two exit messages (a model that can't load, a port
that is taken) are one `error: ...` line on stderr, the command's answer to the shell.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from vaegan import asset_path

DEMO_MODEL = asset_path("demo-model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; defaults follow VAEGAN_MODEL, SPACE_ID and PORT."""
    hosted = bool(os.environ.get("SPACE_ID") or os.environ.get("PORT"))
    parser = argparse.ArgumentParser(description="Explore a vaegan model in the browser")
    parser.add_argument("--model", default=os.environ.get("VAEGAN_MODEL") or str(DEMO_MODEL),
                        help="local model dir or Hub repo id (default: $VAEGAN_MODEL, else the bundled demo model)")
    parser.add_argument("--host", default="0.0.0.0" if hosted else "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 7860))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return parser.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (a container or Space stopping) as Ctrl+C: Gradio closes the server and the process exits normally,
    so the page's temporary folder is removed (on a bare SIGTERM no finalizer runs)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Load the model, build the page and serve it until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    import torch

    from vaegan.hub import HubError, load_model  # after parsing: --help stays instant
    from vaegan.ui import build_demo, launch_options

    try:
        model, latent_map = load_model(args.model)
    except HubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    logging.getLogger("app").info("model %s (latent %d), %s", args.model, model.config.latent_dim,
                                  f"map of {len(latent_map)} eyes" if latent_map is not None else "no latent map")
    # A click decodes one latent: 2-3 ms on one thread, but 20x slower when torch's thread pool spins
    # against other work on the same cores. Requests run in parallel instead (the queue's concurrency).
    torch.set_num_threads(1)
    demo = build_demo(model, latent_map)
    # Each event is a few milliseconds of single-threaded CPU work: one worker per core.
    demo.queue(default_concurrency_limit=max(2, min(8, os.cpu_count() or 1)), max_size=64)
    # Gradio keeps ~70 KB of page state per session (10,000 by default): cap it so memory stays bounded.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, state_session_capacity=2000,
                    **launch_options())  # the page's theme (system fonts), CSS and upload limit
    except OSError as error:  # the port is taken, or the host is not this machine's
        print(f"error: can't serve on {args.host}:{args.port} ({error}); pick another with --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # stopped while still starting (once serving, Gradio itself closes the server and returns)
        logging.getLogger("app").info("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
