#!/usr/bin/env bash
# The committed runs/*/student.pt files (~45 MB) travel with every device call and leave too little of the 64 MiB
# for the data bundles. Untrack them for the GPU calls only, and put them back before any commit:
#   bash bench/gpu/students.sh away      # git rm --cached + .git/info/exclude (the files stay on disk)
#   bash bench/gpu/students.sh back      # restore the index and the exclude file
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
LIST=.git/shrinkface_students_away.txt
case "${1:-}" in
  away)
    [ -f "$LIST" ] && { echo "already away ($LIST); run: $0 back"; exit 1; }
    git ls-files 'runs/*/student.pt' > "$LIST"
    git rm -q --cached $(cat "$LIST")
    sed 's|^|/|' "$LIST" >> .git/info/exclude
    echo "untracked $(wc -l < "$LIST") students; tracked bytes now: $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)"
    ;;
  back)
    [ -f "$LIST" ] || { echo "nothing away"; exit 0; }
    git reset -q -- $(cat "$LIST")
    while read -r f; do sed -i "\|^/$f\$|d" .git/info/exclude; done < "$LIST"
    rm "$LIST"
    git status --short -- 'runs/*/student.pt'
    echo "students tracked again"
    ;;
  *) echo "usage: $0 away|back"; exit 2 ;;
esac
