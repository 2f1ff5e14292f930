// The map of /map: reads the stores of the list's question from the open-data
// API and draws one marker per store, coloured by its stock status; each
// marker is a link to the store's page, named by the store and its status.
// While the page is in view it asks again every second, as the page says:
// markers and the list's statuses follow the answer, and when a store's stock
// changed (its `stock_at` moved) the list is read again from the server for
// its figures. The page works without it (the list is rendered by the
// server); this only adds the map.
(function () {
  "use strict";
  var box = document.querySelector("[data-map]");
  if (!box || typeof L === "undefined") {
    return;
  }
  var lat = parseFloat(box.dataset.lat);
  var lng = parseFloat(box.dataset.lng);
  var map = L.map(box).setView([lat, lng], 15);
  L.tileLayer(box.dataset.tileUrl, {
    maxZoom: 19,
    attribution: box.dataset.attribution
  }).addTo(map);

  function label(stat) {
    return box.getAttribute("data-label-" + (stat === "none" ? "" : stat)) || stat;
  }

  // Tooltips and popups are built from elements whose text is set with
  // textContent: Leaflet renders a string as HTML, and a store's name is data.
  function tooltip(store, stat) {
    var span = document.createElement("span");
    span.textContent = store.name + " · " + label(stat);
    return span;
  }

  function listRow(code) {
    var rows = document.querySelectorAll("tr[data-store-code]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-store-code") === code) {
        return rows[i];
      }
    }
    return null;
  }

  function popup(store, stat) {
    var div = document.createElement("div");
    var name = document.createElement("a");
    name.href = "/stores/" + encodeURIComponent(store.code);
    name.className = "popup-name";
    name.textContent = store.name;
    var addr = document.createElement("div");
    addr.textContent = store.addr;
    var status = document.createElement("div");
    status.textContent = label(stat);
    // The 2020 objects carry only the status; the list beside the map has
    // the two figures (to book, at the counter) of the same stores.
    var row = listRow(store.code);
    if (row && row.hasAttribute("data-figures")) {
      var figures = document.createElement("div");
      figures.setAttribute("data-popup-figures", "");
      figures.textContent = row.getAttribute("data-figures");
      status.appendChild(figures);
    }
    div.appendChild(name);
    div.appendChild(addr);
    div.appendChild(status);
    return div;
  }

  // The marker is a link whose words (hidden on screen, read by a screen
  // reader) are the store and its status; Leaflet's own keyboard handling is
  // off so that the link, not a wrapper, takes the focus.
  function pin(store, stat) {
    var link = document.createElement("a");
    link.href = "/stores/" + encodeURIComponent(store.code);
    link.className = "store-pin";
    link.setAttribute("data-remain-stat", stat);
    link.setAttribute("data-marker-link", store.code);
    var words = document.createElement("span");
    words.className = "visually-hidden";
    words.textContent = store.name + ", " + label(stat);
    link.appendChild(words);
    return link;
  }

  var markers = {};
  var seen = {};

  function place(store) {
    var stat = store.remain_stat || "none";
    var marker = markers[store.code];
    if (marker && marker.stat === stat) {
      return;
    }
    if (marker) {
      map.removeLayer(marker);
    }
    marker = L.marker([store.lat, store.lng], {
      icon: L.divIcon({
        html: pin(store, stat),
        className: "store-marker",
        iconSize: [28, 28]
      }),
      keyboard: false
    }).addTo(map);
    marker.stat = stat;
    marker.bindPopup(popup(store, stat));
    marker.bindTooltip(tooltip(store, stat));
    var el = marker.getElement();
    if (el) {
      el.setAttribute("data-marker", store.code);
      el.setAttribute("data-remain-stat", stat);
    }
    markers[store.code] = marker;
    var row = listRow(store.code);
    if (row) {
      row.setAttribute("data-remain-stat", stat === "none" ? "" : stat);
      var badge = row.querySelector(".stock");
      if (badge) {
        badge.setAttribute("data-remain-stat", stat === "none" ? "" : stat);
        badge.textContent = label(stat);
      }
    }
  }

  // The list's rows and figures as the server renders them now.
  function rereadList() {
    fetch(window.location.href, { headers: { Accept: "text/html" } })
      .then(function (res) {
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["[data-store-list] tbody", "#map-list-heading", "[data-created-at]"].forEach(function (css) {
          var now = document.querySelector(css);
          var then = fresh.querySelector(css);
          if (now && then) {
            now.replaceWith(document.importNode(then, true));
          }
        });
        box.setAttribute("data-list-read", String(Number(box.getAttribute("data-list-read") || 0) + 1));
      })
      .catch(function () {});
  }

  var asking = false;
  var first = true;

  function ask() {
    if (asking) {
      return;
    }
    asking = true;
    fetch(box.dataset.api, { headers: { Accept: "application/json" } })
      .then(function (res) {
        if (!res.ok) {
          throw new Error("open data answered " + res.status);
        }
        return res.json();
      })
      .then(function (answer) {
        var stores = answer.stores || [];
        var bounds = [];
        var changed = false;
        var now = {};
        stores.forEach(function (store) {
          var mark = (store.remain_stat || "none") + "|" + (store.stock_at || "");
          if (!first && seen[store.code] !== mark) {
            changed = true;
          }
          now[store.code] = mark;
          place(store);
          bounds.push([store.lat, store.lng]);
        });
        Object.keys(markers).forEach(function (code) {
          if (!(code in now)) {
            map.removeLayer(markers[code]);
            delete markers[code];
            changed = true;
          }
        });
        seen = now;
        if (first) {
          if (bounds.length > 1) {
            map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
          } else if (bounds.length === 1) {
            map.setView(bounds[0], 16);
          }
          first = false;
        } else if (changed) {
          rereadList();
        }
        box.setAttribute("data-markers", String(bounds.length));
        box.setAttribute("data-asked", String(Number(box.getAttribute("data-asked") || 0) + 1));
      })
      .catch(function (e) {
        box.setAttribute("data-map-error", String(e && e.message));
      })
      .then(function () {
        asking = false;
      });
  }

  var live = document.querySelector("[data-map-live]");
  if (live) {
    live.hidden = false;
  }
  ask();
  window.setInterval(function () {
    if (document.visibilityState === "visible") {
      ask();
    }
  }, 1000);
})();
