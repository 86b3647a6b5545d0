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

// Keyboard shortcuts for staff pages, listed in the dialog "?" opens (templates/staff.html).
// Keys typed into a text box are the text's, never a shortcut; Escape leaves the box.
(function () {
  var dialog = document.getElementById("shortcuts");
  if (!dialog) return;
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-queue-rows] > tr")).filter(function (row) {
    return row.querySelector("a[href]");
  });
  var chosen = -1;

  function choose(index) {
    if (!rows.length) return;
    if (chosen >= 0) rows[chosen].classList.remove("table-active");
    chosen = Math.max(0, Math.min(rows.length - 1, index));
    var row = rows[chosen];
    row.classList.add("table-active");
    row.querySelector("a[href]").focus();
  }

  function showTab(name) {
    var tab = document.getElementById("tab-" + name);
    if (!tab) return false;
    tab.click();
    var pane = document.getElementById("pane-" + name);
    var box = pane && (pane.querySelector("form[method=post] textarea") ||
                       pane.querySelector("form[method=post] select, form[method=post] input:not([type=hidden])"));
    if (box) box.focus();
    return true;
  }

  function typing(target) {
    return target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
  }

  document.querySelectorAll("[data-shortcuts-open]").forEach(function (button) {
    button.addEventListener("click", function () { dialog.showModal(); });
  });
  dialog.querySelector("[data-shortcuts-close]").addEventListener("click", function () { dialog.close(); });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || dialog.open) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var done = true;
    switch (event.key) {
      case "?": dialog.showModal(); break;
      case "/":
        var search = document.querySelector("form[role=search] input[name=q]");
        if (search) search.focus(); else done = false;
        break;
      case "j": choose(chosen + 1); break;
      case "k": choose(chosen - 1); break;
      case "o":
        if (chosen >= 0) rows[chosen].querySelector("a[href]").click(); else done = false;
        break;
      case "r": done = showTab("reply"); break;
      case "n": done = showTab("note"); break;
      case "c": done = showTab("call"); break;
      case "u": window.location.href = dialog.dataset.queueUrl; break;
      default: done = false;
    }
    if (done) event.preventDefault();
  });
})();

// The queue's "tick every ticket on this page" box.
document.querySelectorAll("[data-pick-all]").forEach(function (all) {
  all.addEventListener("change", function () {
    document.querySelectorAll("input[type=checkbox][name=tickets]").forEach(function (box) {
      box.checked = all.checked;
    });
  });
});
