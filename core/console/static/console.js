// The console's only script (served from /static: the CSP allows no inline script).
// Asks before an action, and enables Delete only when the reference is typed; the
// server checks both again, so the pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  document.querySelectorAll("form.delete").forEach(function (form) {
    var input = form.querySelector("input[name=confirm]");
    var button = form.querySelector("button");
    var check = function () { button.disabled = input.value.trim() !== input.dataset.expect; };
    input.addEventListener("input", check);
    check();
  });
});
