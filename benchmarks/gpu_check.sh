#!/usr/bin/env bash
# The GPU paths proven in one prepared run (issue 12): about 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh                     # on a machine with CUDA
#   bash benchmarks/gpu_check.sh --device cpu        # the same steps on the CPU (a dry run of the script)
#   bash benchmarks/gpu_check.sh --device cpu --quick   # steps 1 and 2 only, small sizes
#
# 1. the device tests on the device: AMP in bf16 and fp16, channels_last, peak memory, the sync counter;
# 2. fit against a minimal loop and against a loop that reads the loss every batch: LeNet on mnist5k and
#    ResNet-18 on synthetic 224 px batches (images per second and the ratios); channels-last against
#    contiguous for the course's networks (the CPU's default; on the GPU, is it worth turning on?);
# 3. every lesson in smoke mode, then lessons 01, 07 and 08 in full mode, with their times.
# Everything it prints also goes to runs/gpu_check/report.md; paste that table into benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."

device=cuda
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: $0 [--device cuda|cpu] [--quick]" >&2; exit 2 ;;
  esac
done
[ -d .venv ] && . .venv/bin/activate
export TLCOURSE_OFFLINE="${TLCOURSE_OFFLINE:-1}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
out=runs/gpu_check
mkdir -p "$out"
report="$out/report.md"
failed=0
step() {  # step NAME COMMAND...: run it, time it, keep its output in the report
  local name="$1"; shift
  local start=$SECONDS
  echo "## $name" | tee -a "$report"
  echo '```' >> "$report"
  "$@" 2>&1 | tee -a "$report"
  local rc=${PIPESTATUS[0]}
  echo '```' >> "$report"
  echo "($name: exit $rc, $((SECONDS - start)) s)" | tee -a "$report"
  [ "$rc" -eq 0 ] || failed=1
}

{
  echo "# gpu_check on $(date -u +%Y-%m-%d) ($device)"
  python -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|',
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} | tee "$report"
if [ "$device" = cuda ] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "no CUDA device here: run with --device cpu for a dry run" | tee -a "$report"
  exit 2
fi

step "1. device tests on $device" env TLCOURSE_TEST_DEVICE="$device" \
  python -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_device.py tests/test_train.py
if [ "$quick" -eq 1 ]; then
  step "2. fit against hand-written loops (LeNet, mnist5k)" \
    python benchmarks/fit_overhead.py --model lenet --device "$device" --repeats 2 --images 2000 --no-progress
  step "2. fit against hand-written loops (ResNet-18, 224 px)" \
    python benchmarks/fit_overhead.py --model resnet18 --device "$device" --repeats 1 --images 64 --batch-size 32 --no-progress
else
  step "2. fit against hand-written loops (LeNet, mnist5k)" \
    python benchmarks/fit_overhead.py --model lenet --device "$device" --repeats 5 --epochs 2 --no-progress
  step "2. fit against hand-written loops (ResNet-18, 224 px)" \
    python benchmarks/fit_overhead.py --model resnet18 --device "$device" --repeats 3 --no-progress \
    $([ "$device" = cpu ] && echo "--images 128 --batch-size 32" || echo "--images 2048 --batch-size 128")
  step "2. channels-last against contiguous (the course's networks)" \
    python benchmarks/channels_last.py --device "$device" --repeats 3
  step "3. every lesson in smoke mode" tlcourse run --smoke --device "$device" --output "$out/smoke"
  step "3. lessons 01, 07, 08 in full mode" tlcourse run --device "$device" --output "$out/full" 01 07 08
  step "3. where the time went (smoke)" python benchmarks/course_time.py "$out/smoke" --top 2
  step "3. where the time went (full)" python benchmarks/course_time.py "$out/full" --top 3
fi
echo "report: $report" | tee -a "$report"
exit "$failed"
