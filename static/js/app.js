// Gatehouse dashboard behaviour. No inline scripts (the CSP forbids them); everything is wired here.
(function () {
  "use strict";

  // Open any <dialog data-open> swapped in by htmx (or present on load) as a modal. `root` may be
  // the dialog itself: htmx:load reports each top-level element it swapped in.
  function openDialogs(root) {
    var dialogs = Array.prototype.slice.call(root.querySelectorAll("dialog[data-open]"));
    if (root.matches && root.matches("dialog[data-open]")) dialogs.push(root);
    dialogs.forEach(function (dialog) {
      if (!dialog.open) dialog.showModal();
      dialog.removeAttribute("data-open");
    });
  }

  // Close and remove a dialog that was opened as a modal; one shown in place on a page without
  // JavaScript's help (<dialog open>) is removed the same way.
  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
    dialog.remove();
    returnFocus();
  }

  // Focus goes back to what opened the dialog (the link or button that loaded it), if still there.
  var opener = null;
  function returnFocus() {
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.getAttribute && elt.getAttribute("hx-target") === "#modal-root") opener = elt;
  });

  // A dialog that shows a secret once (data-secret) is not dismissed by Escape: only its Done
  // button, which says the secret was saved, closes it (as Stripe and GitHub do).
  document.addEventListener("cancel", function (event) {
    if (event.target.matches && event.target.matches("dialog") && event.target.querySelector("[data-secret]")) {
      event.preventDefault();
      var done = event.target.querySelector("[data-close-dialog]");
      if (done) done.focus();
    }
  }, true);

  // Copy buttons: <button data-copy="#input-id">. Clipboard API first; if it is unavailable or
  // refused, select the text so the user can press Ctrl+C.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      var input = document.querySelector(button.getAttribute("data-copy"));
      if (!input) return;
      var status = button.parentElement.querySelector("[data-copy-status]");
      var done = function (copied) {
        if (status) status.textContent = copied ? "Copied to the clipboard" : "Selected: press Ctrl+C (⌘C) to copy";
        button.textContent = copied ? "Copied" : "Copy";
        if (copied) {
          window.setTimeout(function () { button.textContent = "Copy"; }, 4000);
        }
      };
      input.focus();
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { done(true); },
          function () { done(false); }
        );
      } else {
        done(false);
      }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) {
        event.preventDefault();
        closeDialog(dialog);
      }
    }
  });

  // A dialog closed with Escape is removed too, so no stale form (or token) stays in the page.
  document.addEventListener("close", function (event) {
    if (event.target.matches && event.target.matches("#modal-root dialog")) {
      event.target.remove();
      returnFocus();
    }
  }, true);

  // Sent by the server (HX-Trigger: dialog-close) when a dialog's action has finished.
  document.addEventListener("dialog-close", function () {
    document.querySelectorAll("dialog[open]").forEach(closeDialog);
  });

  document.addEventListener("htmx:load", function (event) { openDialogs(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { openDialogs(document); });
})();
