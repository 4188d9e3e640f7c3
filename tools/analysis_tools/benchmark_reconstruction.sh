#!/usr/bin/env bash
# The paper's reconstruction benchmark (PAPER.md §4.1 Table 1): ImageNet-1k val and MS-COCO val2017, each at
# 256 / 512 / 1024 (resize short side, bicubic, + centre crop; posterior mean; PSNR / SSIM / LPIPS-alex / rFID), for
# several models side by side, into ONE report (Markdown + JSON) via tools/test.py.
#
#   tools/analysis_tools/benchmark_reconstruction.sh MODEL [MODEL ...] [-- EXTRA tools/test.py ARGS]
#
# MODEL is CFG[:CKPT] (a public VAE's CKPT: OUT/model.safetensors of tools/model_converters/diffusers_to_transvae.py), e.g.
#   tools/analysis_tools/benchmark_reconstruction.sh \
#       configs/transvae/transvae-t_f16d32_8xb32-10e-gan_in1k.py:work_dirs/stage2/iter_50050.pth \
#       configs/benchmarks/flux-vae_f8d16.py:checkpoints/flux-vae/model.safetensors
#
# Environment:
#   IMAGENET_VAL  ImageNet val folder with class sub-folders   (default data/imagenet/val)
#   COCO_VAL      flat COCO val2017 folder                     (default data/coco/val2017)
#   RESOLUTIONS   space-separated                              (default "256 512 1024"; PRESET=cpu: "64 128 256")
#   OUT_DIR       report.md / report.json / logs go here       (default work_dirs/benchmark_reconstruction)
#   MAX_IMAGES    quick run on N images per dataset            (default: all; N < 2048 makes rFID not comparable)
#   GPUS          >1: run through tools/dist_test.sh-style torchrun (default 1: plain python)
#   PRESET        cpu: the bundled photos at 64/128/256 instead of ImageNet / COCO (micro models)
#   PYTHON        interpreter (default .venv/bin/python if present, else python)
#   TILE          none | auto | N, passed to tools/test.py --tile (default none, the paper protocol)
set -euo pipefail
cd "$(dirname "$0")/../.."

models=()
extra=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
    models+=("$1"); shift
done
if [ ${#models[@]} -eq 0 ]; then
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
OUT_DIR=${OUT_DIR:-work_dirs/benchmark_reconstruction}
GPUS=${GPUS:-1}
TILE=${TILE:-none}

args=()
if [ "${PRESET:-}" = "cpu" ]; then
    RESOLUTIONS=${RESOLUTIONS:-"64 128 256"}
    args+=(--preset cpu --datasets "photos=${PHOTOS:-data/sample_photos}")
else
    RESOLUTIONS=${RESOLUTIONS:-"256 512 1024"}
    IMAGENET_VAL=${IMAGENET_VAL:-data/imagenet/val}
    COCO_VAL=${COCO_VAL:-data/coco/val2017}
    for d in "$IMAGENET_VAL" "$COCO_VAL"; do
        [ -d "$d" ] || { echo "error: dataset folder $d not found (set IMAGENET_VAL / COCO_VAL)" >&2; exit 2; }
    done
    args+=(--datasets "imagenet=$IMAGENET_VAL" "coco=$COCO_VAL")
fi
# shellcheck disable=SC2206
res=($RESOLUTIONS)
args+=(--resolutions "${res[@]}" --tile "$TILE")
[ -n "${MAX_IMAGES:-}" ] && args+=(--max-images "$MAX_IMAGES")
args+=(--work-dir "$OUT_DIR/logs" --report "$OUT_DIR/report.md" --out "$OUT_DIR/report.json")

mkdir -p "$OUT_DIR"
if [ "$GPUS" -gt 1 ]; then
    PORT=${PORT:-29500}
    "$PYTHON" -m torch.distributed.run --nproc_per_node="$GPUS" --master_port="$PORT" \
        tools/test.py --models "${models[@]}" "${args[@]}" --launcher pytorch "${extra[@]}"
else
    "$PYTHON" tools/test.py --models "${models[@]}" "${args[@]}" "${extra[@]}"
fi
echo
cat "$OUT_DIR/report.md"
