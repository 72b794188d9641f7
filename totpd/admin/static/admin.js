// totpd admin page: the camera, and dropping or pasting a screenshot.
// Everything here is an extra: without JavaScript, the paste and upload forms work alone.
"use strict";

(function () {
  const SCAN_EVERY_MS = 200;
  const OTP_URI = /^otpauth(-migration)?:\/\//i;

  function setUpDrop() {
    const zone = document.getElementById("drop-zone");
    const input = document.getElementById("image");
    if (!zone || !input) {
      return;
    }
    const take = function (files) {
      const images = Array.from(files).filter(function (file) {
        return file.type.startsWith("image/");
      });
      if (images.length === 0) {
        return false;
      }
      const transfer = new DataTransfer();
      transfer.items.add(images[0]);
      input.files = transfer.files;
      zone.classList.remove("over");
      return true;
    };
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      take(event.dataTransfer.files);
    });
    document.addEventListener("paste", function (event) {
      if (event.clipboardData && take(event.clipboardData.files)) {
        event.preventDefault();
      }
    });
  }

  function setUpCamera() {
    const section = document.getElementById("camera");
    const target = document.getElementById("uri");
    if (!section || !target || typeof jsQR !== "function") {
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return; // not a secure context (use http://127.0.0.1), or no camera support
    }
    const video = document.getElementById("camera-video");
    const status = document.getElementById("camera-status");
    const start = document.getElementById("camera-start");
    const stop = document.getElementById("camera-stop");
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    let stream = null;
    let timer = null;

    function finish(message) {
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
      if (stream !== null) {
        stream.getTracks().forEach(function (track) {
          track.stop();
        });
        stream = null;
      }
      video.srcObject = null;
      video.classList.remove("live");
      start.hidden = false;
      stop.hidden = true;
      status.textContent = message;
    }

    function scan() {
      timer = null;
      if (stream === null) {
        return;
      }
      if (video.readyState >= video.HAVE_CURRENT_DATA && video.videoWidth > 0) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0, canvas.width, canvas.height);
        const frame = context.getImageData(0, 0, canvas.width, canvas.height);
        const code = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "attemptBoth" });
        if (code && code.data) {
          if (OTP_URI.test(code.data)) {
            target.value = code.data;
            finish("Found an otpauth:// QR code: it is in the paste form. Check the name, then press Enrol.");
            target.focus();
            return;
          }
          status.textContent = "That QR code is not an otpauth:// link. Still looking...";
        }
      }
      timer = setTimeout(scan, SCAN_EVERY_MS);
    }

    start.addEventListener("click", async function () {
      status.textContent = "Asking for the camera...";
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: "environment", width: { ideal: 1280 } },
          audio: false,
        });
      } catch (error) {
        finish("The camera is not available (" + error.name + "). Upload a screenshot instead.");
        return;
      }
      video.srcObject = stream;
      video.classList.add("live");
      await video.play();
      start.hidden = true;
      stop.hidden = false;
      status.textContent = "Hold the QR code up to the camera...";
      scan();
    });
    stop.addEventListener("click", function () {
      finish("Camera stopped.");
    });
    section.hidden = false;
  }

  setUpDrop();
  setUpCamera();
})();
