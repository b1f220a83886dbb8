# Where the GPU box keeps the moved training set, caches and the run (outside the synced repo copy, so a later
# call's sync cannot overwrite the run's log). Sourced by the other scripts.
export SF=/root/sf
export SHRINKFACE_ALIGNED=$SF/aligned SHRINKFACE_DATA=$SF/data SHRINKFACE_CACHE=$SF/cache
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
mkdir -p "$SHRINKFACE_ALIGNED" "$SHRINKFACE_DATA/lfw" "$SHRINKFACE_CACHE/assets" "$SF/runs"
