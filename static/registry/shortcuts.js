// Keyboard shortcuts of the data-entry forms, listed under each form: Enter saves (the browser's
// own), Ctrl+Enter (Cmd+Enter on a Mac) saves and opens a new form of the same kind.
(function () {
  "use strict";
  document.querySelectorAll("form.entry").forEach(function (form) {
    var another = form.querySelector("button[data-shortcut=add]");
    if (!another) return;
    form.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit(another);
      }
    });
  });
})();

// After a refused stale save: "Use theirs" / "Keep mine" put either entry of a field into the form
// (the form already holds a combination; the nurse decides field by field, then saves).
(function () {
  "use strict";
  document.querySelectorAll("button[data-merge-field]").forEach(function (button) {
    button.addEventListener("click", function () {
      var name = button.getAttribute("data-merge-field");
      var input = document.getElementById("id_" + name);
      if (!input) return;
      input.value = button.getAttribute("data-merge-value");
      input.dispatchEvent(new Event("input", {bubbles: true}));
      var kept = document.querySelector("[data-kept-for='" + name + "']");
      if (kept) kept.textContent = button.getAttribute("data-merge-kept");
    });
  });
})();
