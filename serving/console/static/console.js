// routecast console: small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Forms that change something ask first when they carry data-confirm.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  // "/" jumps to the search field that declares it (as on many consoles).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (document.activeElement && document.activeElement.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    var target = document.querySelector("[data-focus-key='/']");
    if (target) {
      event.preventDefault();
      target.focus();
    }
  });
})();
