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
