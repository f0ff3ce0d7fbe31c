// Polls each training version's progress URL and updates its bar; reloads the page when done
// so the metrics and charts appear.
(function () {
  "use strict";
  function watch(box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector("progress");
    var text = box.querySelector(".sb-progress-text");
    function tick() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var percent = Number(p.percent || 0);
          bar.value = percent;
          var parts = [percent.toFixed(1) + "%"];
          if (p.epoch) { parts.push("epoch " + p.epoch + (p.epochs ? " of " + p.epochs : "")); }
          Object.keys(p.metric || {}).forEach(function (k) {
            parts.push(k + " " + Number(p.metric[k]).toFixed(4));
          });
          parts.push(p.status);
          text.textContent = parts.join(" \u00b7 ");
          if (p.done) { window.location.reload(); } else { setTimeout(tick, 2000); }
        })
        .catch(function () { setTimeout(tick, 5000); });
    }
    tick();
  }
  document.querySelectorAll("[data-progress-url]").forEach(watch);
})();
