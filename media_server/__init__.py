"""The voice server: media, turns and engines."""

import os

# One BLAS thread per numpy call: the offline Whisper decodes on
# WHISPER_WORKERS threads of one core each, and OpenBLAS's own threads would
# spin on the cores that carry the calls' audio. Set here, before anything
# imports numpy; OPENBLAS_NUM_THREADS in the environment still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
