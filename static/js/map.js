// The map of /map: reads the stores of the list's question from the open-data
// API and draws one circle per store, coloured by its stock status. The page
// works without it (the list is rendered by the server); this only adds the map.
(function () {
  "use strict";
  var box = document.querySelector("[data-map]");
  if (!box || typeof L === "undefined") {
    return;
  }
  var colours = {
    plenty: "#15803d",
    some: "#ca8a04",
    few: "#dc2626",
    empty: "#6b7280",
    "break": "#6b7280",
    none: "#ffffff"
  };
  var lat = parseFloat(box.dataset.lat);
  var lng = parseFloat(box.dataset.lng);
  var map = L.map(box).setView([lat, lng], 15);
  L.tileLayer(box.dataset.tileUrl, {
    maxZoom: 19,
    attribution: box.dataset.attribution
  }).addTo(map);

  function label(stat) {
    return box.getAttribute("data-label-" + stat) || stat;
  }

  // Tooltips and popups are built from elements whose text is set with
  // textContent: Leaflet renders a string as HTML, and a store's name is data.
  function tooltip(store, stat) {
    var span = document.createElement("span");
    span.textContent = store.name + " · " + label(stat);
    return span;
  }

  function figuresRow(code) {
    var rows = document.querySelectorAll("tr[data-store-code][data-figures]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-store-code") === code) {
        return rows[i];
      }
    }
    return null;
  }

  function popup(store, stat) {
    var div = document.createElement("div");
    var name = document.createElement("strong");
    name.textContent = store.name;
    var addr = document.createElement("div");
    addr.textContent = store.addr;
    var status = document.createElement("div");
    status.textContent = label(stat);
    // The 2020 objects carry only the status; the list beside the map has
    // the two figures (to book, at the counter) of the same stores.
    var row = figuresRow(store.code);
    if (row) {
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

  fetch(box.dataset.api, { headers: { Accept: "application/json" } })
    .then(function (res) {
      if (!res.ok) {
        throw new Error("open data answered " + res.status);
      }
      return res.json();
    })
    .then(function (answer) {
      var bounds = [];
      (answer.stores || []).forEach(function (store) {
        var stat = store.remain_stat || "none";
        var marker = L.circleMarker([store.lat, store.lng], {
          radius: 10,
          weight: 2,
          color: "#111827",
          fillColor: colours[stat] || colours.none,
          fillOpacity: 0.9,
          className: "store-marker"
        }).addTo(map);
        marker.bindPopup(popup(store, stat));
        marker.bindTooltip(tooltip(store, stat));
        var el = marker.getElement();
        if (el) {
          el.setAttribute("data-marker", store.code);
          el.setAttribute("data-remain-stat", stat);
        }
        bounds.push([store.lat, store.lng]);
      });
      if (bounds.length > 1) {
        map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
      } else if (bounds.length === 1) {
        map.setView(bounds[0], 16);
      }
      box.setAttribute("data-markers", String(bounds.length));
    })
    .catch(function (e) {
      box.setAttribute("data-map-error", String(e && e.message));
    });
})();
