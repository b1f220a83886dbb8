#!/usr/bin/env bash
# Compile android_demo/core with javac (Java 17, no Gradle, no network) and run its JUnit 4 tests against the
# golden vectors in tests/golden/. Needs a JDK ≥ 17 and Debian's junit4 (+ libhamcrest-java): `make setup-android-core`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
junit="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
hamcrest="${HAMCREST_JAR:-/usr/share/java/hamcrest.jar}"
for jar in "$junit" "$hamcrest"; do
  if [ ! -f "$jar" ]; then
    echo "missing $jar: run \`make setup-android-core\` (apt-get install junit4) or set JUNIT_JAR/HAMCREST_JAR" >&2
    exit 2
  fi
done
command -v javac >/dev/null || { echo "javac not found: install a JDK 17 (openjdk-17-jdk-headless)" >&2; exit 2; }
out="$here/build/jvm"
rm -rf "$out"
mkdir -p "$out/main" "$out/test"
cd "$here"
javac --release 17 -encoding UTF-8 -Xlint:all -Werror -d "$out/main" $(find src/main/java -name '*.java' | sort)
javac --release 17 -encoding UTF-8 -d "$out/test" -cp "$out/main:$junit" $(find src/test/java -name '*.java' | sort)
tests=$(cd src/test/java && find . -name '*Test.java' | sort | sed 's|^\./||; s|\.java$||; s|/|.|g')
exec java -Dshrinkface.golden="${SHRINKFACE_GOLDEN:-$repo/tests/golden}" -cp "$out/main:$out/test:$junit:$hamcrest" \
  org.junit.runner.JUnitCore $tests
