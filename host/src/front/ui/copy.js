// Copy buttons for Berth's web UI. Pages work without this file: each
// command is shown as text next to its (hidden) button.
"use strict";

function copied(button, label) {
  button.textContent = label;
  setTimeout(function () { button.textContent = "Copy"; }, 1500);
}

function selectText(node) {
  var range = document.createRange();
  range.selectNodeContents(node);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var shown = button.previousElementSibling;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { copied(button, "Copied"); },
          function () { if (shown) { selectText(shown); } copied(button, "Press Ctrl+C"); }
        );
      } else {
        if (shown) { selectText(shown); }
        copied(button, "Press Ctrl+C");
      }
    });
  });
});
