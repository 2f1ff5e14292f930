// The countdown of a page that made its visitor wait (templates/countdown.html):
// the seconds left, said each second in the page's words for one and for
// several, and when they are over the page tries again by itself: it opens the
// address again, or sends the kept booking form again (a reload would turn the
// post into a GET). A button stops it, for whoever needs more time to read (a
// page that moves on by itself must let its reader stop it). Without
// JavaScript the page's words ask for the "try again" button instead.
(function () {
  "use strict";
  var box = document.querySelector("[data-countdown]");
  if (!box) {
    return;
  }
  var seconds = parseInt(box.getAttribute("data-countdown"), 10);
  if (!(seconds >= 1)) {
    seconds = 1;
  }
  var url = box.getAttribute("data-countdown-url");
  var form = document.querySelector("form[data-waiting-form]");
  var status = document.querySelector("[data-countdown-status]");
  var pause = document.querySelector("[data-waiting-pause]");

  function say(n) {
    var words = box.getAttribute(n === 1 ? "data-countdown-one" : "data-countdown-other");
    box.textContent = words.split("{seconds}").join(String(n));
  }

  function done() {
    if (form) {
      form.submit();
    } else if (url) {
      window.location.assign(url);
    } else {
      box.textContent = box.getAttribute("data-countdown-done");
      if (status) {
        status.textContent = box.getAttribute("data-countdown-done");
      }
    }
  }

  say(seconds);
  var timer = window.setInterval(function () {
    seconds -= 1;
    if (seconds >= 1) {
      say(seconds);
      return;
    }
    window.clearInterval(timer);
    if (pause) {
      pause.hidden = true;
    }
    done();
  }, 1000);

  if (!pause || !(form || url)) {
    return;
  }
  pause.hidden = false;
  pause.addEventListener("click", function () {
    window.clearInterval(timer);
    pause.hidden = true;
    box.hidden = true;
    if (status) {
      status.textContent = pause.getAttribute("data-paused-text");
    }
  });
})();
