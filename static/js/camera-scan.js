// "Scan with the camera" on the pickup page. A counter without a hardware
// scanner holds the citizen's QR code up to the device's camera; the code read
// fills the code field and is sent, as a scanner's Enter would. The browser's
// own BarcodeDetector reads the frames where it exists; elsewhere the vendored
// jsQR does, loaded only when first needed. Without a camera (or without
// JavaScript) no button appears and the page works as before.
(function () {
  'use strict';

  var box = document.querySelector('[data-camera-scan]');
  var field = document.getElementById('f-code');
  if (!box || !field || !field.form) {
    return;
  }
  var form = field.form;
  var canFilm = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);

  var jsqr = null;
  function loadJsQR() {
    if (window.jsQR) {
      return Promise.resolve(window.jsQR);
    }
    if (!jsqr) {
      jsqr = new Promise(function (resolve, reject) {
        var script = document.createElement('script');
        script.src = box.getAttribute('data-decoder');
        script.onload = function () {
          if (window.jsQR) {
            resolve(window.jsQR);
          } else {
            reject(new Error('jsQR did not load'));
          }
        };
        script.onerror = function () {
          jsqr = null;
          reject(new Error('jsQR did not load'));
        };
        document.head.appendChild(script);
      });
    }
    return jsqr;
  }

  var detector = null;
  function nativeDetector() {
    if (!detector) {
      detector = !('BarcodeDetector' in window)
        ? Promise.resolve(null)
        : window.BarcodeDetector.getSupportedFormats()
          .then(function (formats) {
            return formats.indexOf('qr_code') >= 0
              ? new window.BarcodeDetector({ formats: ['qr_code'] })
              : null;
          })
          .catch(function () { return null; });
    }
    return detector;
  }

  // The text of the QR code the canvas shows, or null. `{ detector: false }`
  // skips the browser's detector and decodes with jsQR.
  function decodeCanvas(canvas, options) {
    var native = options && options.detector === false
      ? Promise.resolve(null)
      : nativeDetector();
    return native.then(function (d) {
      if (d) {
        return d.detect(canvas).then(function (codes) {
          return codes.length ? codes[0].rawValue : null;
        });
      }
      return loadJsQR().then(function (decode) {
        var context = canvas.getContext('2d', { willReadFrequently: true });
        var image = context.getImageData(0, 0, canvas.width, canvas.height);
        var found = decode(image.data, image.width, image.height, {
          inversionAttempts: 'dontInvert'
        });
        return found ? found.data : null;
      });
    });
  }

  var button = document.createElement('button');
  button.type = 'button';
  button.className = 'button secondary';
  button.setAttribute('data-camera-start', '');
  button.textContent = box.getAttribute('data-label-start');
  var video = document.createElement('video');
  video.hidden = true;
  video.muted = true;
  video.setAttribute('playsinline', '');
  video.setAttribute('aria-label', box.getAttribute('data-label-view'));
  video.setAttribute('data-camera-video', '');
  var status = document.createElement('p');
  status.className = 'hint';
  status.setAttribute('role', 'status');
  status.setAttribute('data-camera-status', '');
  var canvas = document.createElement('canvas');

  var stream = null;
  var timer = null;
  var running = false;

  function say(key) {
    status.textContent = key ? box.getAttribute('data-text-' + key) : '';
  }

  function stop() {
    running = false;
    clearTimeout(timer);
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
    video.hidden = true;
    video.srcObject = null;
    button.textContent = box.getAttribute('data-label-start');
  }

  // Puts a code read into the field and sends the form, as a scanner does.
  function use(text) {
    stop();
    field.value = String(text).trim();
    say('read');
    field.focus();
    if (form.requestSubmit) {
      form.requestSubmit();
    } else {
      form.submit();
    }
  }

  function tick() {
    if (!running) {
      return;
    }
    if (video.readyState < 2 || !video.videoWidth) {
      timer = setTimeout(tick, 200);
      return;
    }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d', { willReadFrequently: true })
      .drawImage(video, 0, 0, canvas.width, canvas.height);
    decodeCanvas(canvas).then(function (text) {
      if (!running) {
        return;
      }
      if (text) {
        use(text);
      } else {
        timer = setTimeout(tick, 200);
      }
    }, function () {
      stop();
      say('unavailable');
    });
  }

  function start() {
    say('looking');
    navigator.mediaDevices.getUserMedia({
      video: { facingMode: 'environment' },
      audio: false
    }).then(function (s) {
      stream = s;
      running = true;
      video.srcObject = s;
      video.hidden = false;
      button.textContent = box.getAttribute('data-label-stop');
      return video.play().then(tick);
    }).catch(function () {
      stop();
      say('unavailable');
    });
  }

  button.addEventListener('click', function () {
    if (running) {
      stop();
      say(null);
      field.focus();
    } else {
      start();
    }
  });

  // For the page's own tests: the decoding and filling a camera frame goes
  // through, fed a picture instead of a camera.
  window.pickupCamera = { decodeCanvas: decodeCanvas, use: use };

  if (canFilm) {
    box.appendChild(button);
    box.appendChild(video);
    box.appendChild(status);
    box.hidden = false;
  }
}());
