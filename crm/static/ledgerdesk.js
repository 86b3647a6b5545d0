// Ledgerdesk's own behaviour. Pages carry no inline script or on…= handler: the
// Content-Security-Policy (crm/http_edge.py) runs scripts from here only.
"use strict";

// A button with data-confirm asks first; "Cancel" keeps its form from being sent.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

// The canned-reply picker on a ticket: insert the chosen text where the cursor is,
// without reloading the page (which would lose what was typed). Without JavaScript the
// picker is a GET that fills the box.
document.querySelectorAll(".canned-picker").forEach(function (picker) {
  picker.addEventListener("submit", function (event) {
    var option = picker.elements.canned.selectedOptions[0];
    var box = document.getElementById(picker.dataset.target);
    if (!option || !option.dataset.text || !box) return;
    event.preventDefault();
    var start = box.selectionStart, end = box.selectionEnd;
    box.value = box.value.slice(0, start) + option.dataset.text + box.value.slice(end);
    box.focus();
    box.selectionStart = box.selectionEnd = start + option.dataset.text.length;
    picker.elements.canned.value = "";
  });
});
