#!/usr/bin/env bash
# The CUDA check, run on a machine with an NVIDIA GPU from the repository root:
# tests/test_cuda.py (the GPU against the CPU and cuDNN) and the cell speed table on the GPU.
# Uses the machine's own python3 with torch; results go to $OUT (default benchmarks/results).
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cuDNN', torch.backends.cudnn.version())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log"
python3 benchmarks/cells.py --device cuda --json "$OUT/cells_cuda.json" 2>&1 | tee "$OUT/cells_cuda.log"
