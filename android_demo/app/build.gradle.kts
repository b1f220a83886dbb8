plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.shrinkface.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.shrinkface.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    // Keep models uncompressed so they can be memory-mapped straight from the APK.
    androidResources {
        noCompress += listOf("tflite", "onnx")
    }

    packaging {
        jniLibs { pickFirsts += listOf("**/libc++_shared.so") }
    }
}

dependencies {
    implementation(project(":core"))

    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")

    val camerax = "1.4.1"
    implementation("androidx.camera:camera-core:$camerax")
    implementation("androidx.camera:camera-camera2:$camerax")
    implementation("androidx.camera:camera-lifecycle:$camerax")
    implementation("androidx.camera:camera-view:$camerax")

    // LiteRT (formerly TensorFlow Lite) Interpreter; XNNPACK is its CPU delegate.
    implementation("com.google.ai.edge.litert:litert:1.4.1")

    // YuNet face detector (cv::FaceDetectorYN): the same detector and 5 landmarks as the Python runtime.
    implementation("org.opencv:opencv:4.13.0")
}
