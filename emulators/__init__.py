"""Emulators of the hardware and servers llmsched talks to, speaking their real wire formats.

* `llmsched.emulators.f5`: a BIG-IP iControl REST emulator (token auth, Basic auth, pool members, HTTPS).
* `llmsched.emulators.engine`: a vLLM / SGLang server emulator (`/metrics` and the OpenAI API over a batching model).
* `llmsched.emulators.cli`: `main(argv)` behind `llmsched emulate f5|engine ...` and `python -m llmsched.emulators`.

See docs/emulators.md.
"""
