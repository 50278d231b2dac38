// The typed date fields (registry/web/dates.py): echo the date spelled out in the page's language
// as it is typed, so a swapped day and month shows at once, and let the calendar button fill the
// box through the browser's own picker (a mouse aid; the box stays the one Tab stop).
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";
  var german = lang.indexOf("de") === 0;
  var words = new Intl.DateTimeFormat(german ? "de-DE" : "en-GB", {day: "numeric", month: "long", year: "numeric", timeZone: "UTC"});

  function parse(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text) || (german && /^(\d{2})\.(\d{2})\.(\d{4})$/.exec(text));
    if (!m) return null;
    var y = +(m[1].length === 4 ? m[1] : m[3]), mo = +m[2], d = +(m[1].length === 4 ? m[3] : m[1]);
    var date = new Date(Date.UTC(y, mo - 1, d));
    return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d ? date : null;
  }

  function echo(input) {
    var target = document.getElementById(input.id + "_echo");
    if (!target) return;
    var text = input.value.trim();
    var date = parse(text);
    target.textContent = date ? words.format(date) : "";
  }

  document.querySelectorAll("input[data-date]").forEach(function (input) {
    input.addEventListener("input", function () { echo(input); });
    input.addEventListener("blur", function () { echo(input); });
  });

  document.querySelectorAll("button[data-calendar-for]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-calendar-for"));
    var picker = document.createElement("input");
    picker.type = "date";
    picker.tabIndex = -1;
    picker.className = "calendar-picker";
    picker.setAttribute("aria-hidden", "true");
    button.after(picker);
    button.addEventListener("click", function () {
      var date = parse(input.value.trim());
      if (date) picker.value = date.toISOString().slice(0, 10);
      if (picker.showPicker) picker.showPicker(); else picker.focus();
    });
    picker.addEventListener("change", function () {
      if (picker.value) { input.value = picker.value; echo(input); input.focus(); }
    });
  });
})();
