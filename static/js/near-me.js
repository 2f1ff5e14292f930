// "Near me" for the store search form and the map's form: asks the browser
// where it is and sends the form with lat and lng, so the results come
// nearest first (the map's address, named by `data-near-me-clear`, is
// emptied: an address would win over the point). Without JavaScript, or
// without a location, the text search works as it is.
(function () {
  "use strict";
  if (!("geolocation" in navigator)) {
    return;
  }
  var forms = document.querySelectorAll("form[data-store-search]");
  Array.prototype.forEach.call(forms, function (form) {
    var status = form.querySelector("[data-near-me-status]");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button secondary";
    button.setAttribute("data-near-me", "");
    button.textContent = form.getAttribute("data-near-me-label");
    var submit = form.querySelector("button[type=submit]");
    submit.insertAdjacentElement("afterend", button);

    function field(name, value) {
      var input = form.querySelector("input[type=hidden][name=" + name + "]");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        form.appendChild(input);
      }
      input.value = value;
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      if (status) {
        status.textContent = form.getAttribute("data-near-me-locating");
      }
      navigator.geolocation.getCurrentPosition(
        function (position) {
          var clear = form.getAttribute("data-near-me-clear");
          var typed = clear && form.querySelector("[name=" + clear + "]");
          if (typed) {
            typed.value = "";
          }
          field("lat", position.coords.latitude.toFixed(5));
          field("lng", position.coords.longitude.toFixed(5));
          form.submit();
        },
        function () {
          button.disabled = false;
          if (status) {
            status.textContent = form.getAttribute("data-near-me-denied");
          }
        },
        { enableHighAccuracy: false, timeout: 15000, maximumAge: 300000 }
      );
    });
  });
})();
