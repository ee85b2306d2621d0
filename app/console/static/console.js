// The console's few lines of script: refresh the live events table, copy a snippet.
(function () {
  "use strict";
  var rows = document.getElementById("event-rows");
  var auto = document.getElementById("auto-refresh");
  if (rows && auto) {
    setInterval(function () {
      if (!auto.checked || document.hidden) return;
      fetch(rows.dataset.refresh, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { rows.innerHTML = html; })
        .catch(function () { /* keep the last rows; the next tick tries again */ });
    }, 3000);
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.copy).textContent;
      navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
    });
  });
})();
