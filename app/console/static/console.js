// The console's few lines of script: refresh live parts of a page, copy a snippet.
(function () {
  "use strict";
  // A part marked data-refresh (live events' rows, the overview's cards) is fetched again,
  // rendered and escaped by the server, every few seconds while the box is ticked.
  var auto = document.getElementById("auto-refresh");
  document.querySelectorAll("[data-refresh]").forEach(function (part) {
    setInterval(function () {
      if ((auto && !auto.checked) || document.hidden) return;
      fetch(part.dataset.refresh, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { part.innerHTML = html; })
        .catch(function () { /* keep what is shown; the next tick tries again */ });
    }, 3000);
  });
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.copy).textContent;
      navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
    });
  });
})();
