// Gatehouse dashboard behaviour. No inline scripts (the CSP forbids them); everything is wired here.
(function () {
  "use strict";

  // Open any <dialog data-open> swapped in by htmx (or present on load) as a modal.
  function openDialogs(root) {
    root.querySelectorAll("dialog[data-open]").forEach(function (dialog) {
      if (!dialog.open) dialog.showModal();
      dialog.removeAttribute("data-open");
    });
  }

  // Copy buttons: <button data-copy="#input-id">. Clipboard API first; if it is unavailable or
  // refused, select the text so the user can press Ctrl+C.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      var input = document.querySelector(button.getAttribute("data-copy"));
      if (!input) return;
      var status = button.parentElement.querySelector("[data-copy-status]");
      var done = function (text) {
        if (status) status.textContent = text;
        button.textContent = text === "Copied" ? "Copied" : "Copy";
      };
      input.focus();
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { done("Copied"); },
          function () { done("Press Ctrl+C to copy"); }
        );
      } else {
        done("Press Ctrl+C to copy");
      }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) {
        event.preventDefault();
        dialog.close();
        dialog.remove();
      }
    }
  });

  // <form data-confirm="…"> asks before submitting when htmx is not handling the confirm.
  document.addEventListener("htmx:load", function (event) { openDialogs(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { openDialogs(document); });
})();
