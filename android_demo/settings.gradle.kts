// shrinkface Android demo: :core (plain JVM logic shared with Python's runtime, unit-tested on any JDK 17) and
// :app (CameraX + YuNet via OpenCV + LiteRT Interpreter/XNNPACK).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "shrinkface-android"
include(":core", ":app")
