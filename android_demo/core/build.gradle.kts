// Plain JVM module (no Android dependency): the logic that must match Python bit for bit. Outside Gradle it is
// compiled and tested by run-jvm-tests.sh (`make test-android-core` in the repository root).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    systemProperty("shrinkface.golden", rootDir.resolve("../tests/golden").absolutePath)
    testLogging { showStandardStreams = true }
}
