// The waiting page tries again by itself when the wait that `Retry-After` set
// is over: it opens the page again, or sends the kept booking form again (a
// reload would turn the post into a GET). A button stops it, for whoever needs
// more time to read (a page that moves on by itself must let its reader stop
// it). Without JavaScript the "try again" button does the same by hand.
(function () {
  "use strict";
  var room = document.querySelector("[data-waiting-retry]");
  if (!room) {
    return;
  }
  var seconds = parseInt(room.getAttribute("data-waiting-retry"), 10);
  if (!(seconds >= 1)) {
    seconds = 1;
  }
  var url = room.getAttribute("data-waiting-url");
  var form = room.querySelector("form[data-waiting-form]");
  var timer = window.setTimeout(function () {
    if (form) {
      form.submit();
    } else if (url) {
      window.location.assign(url);
    }
  }, seconds * 1000);
  var pause = room.querySelector("[data-waiting-pause]");
  var status = room.querySelector("[data-waiting-status]");
  if (!pause) {
    return;
  }
  pause.hidden = false;
  pause.addEventListener("click", function () {
    window.clearTimeout(timer);
    pause.hidden = true;
    if (status) {
      status.textContent = status.getAttribute("data-paused-text");
    }
  });
})();
