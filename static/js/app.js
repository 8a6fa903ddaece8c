// Gatehouse dashboard behaviour. No inline scripts (the CSP forbids them); everything is wired here.
(function () {
  "use strict";

  // Open any <dialog data-open> swapped in by htmx (or present on load) as a modal. `root` may be
  // the dialog itself: htmx:load reports each top-level element it swapped in.
  function openDialogs(root) {
    var dialogs = Array.prototype.slice.call(root.querySelectorAll("dialog[data-open]"));
    if (root.matches && root.matches("dialog[data-open]")) dialogs.push(root);
    dialogs.forEach(function (dialog) {
      guardSecret(dialog);
      if (!dialog.open) dialog.showModal();
      dialog.removeAttribute("data-open");
      focusInto(dialog);
    });
  }

  // A dialog holding a secret is not closed by Escape (closedby="none" makes the browser ignore
  // it, however often it is pressed) nor by the backdrop, only by its "Done, I saved it" link.
  function guardSecret(dialog) {
    if (dialog.querySelector("[data-secret]")) dialog.setAttribute("closedby", "none");
  }

  // Focus moves into a dialog (and into its new body after a swap): to a refusal or the first
  // field with an error if there is one, else the secret, else the autofocus field, else the
  // first control.
  var FOCUSABLE = "input:not([type=hidden]):not([disabled]), select, textarea, button:not([disabled]), a[href]";
  function focusInto(container) {
    var target = refusalIn(container) ||
      container.querySelector("[data-secret]") ||
      container.querySelector("[autofocus]") ||
      container.querySelector(FOCUSABLE);
    if (target) focusAndReveal(target);
  }

  // A refusal (a plan limit, a validation error) is brought into view and focused, so it is seen
  // (and read out) rather than sitting above the fold of a long form.
  function refusalIn(container) {
    var alert = container.querySelector("[role=alert]");
    if (alert) {
      if (!alert.matches(FOCUSABLE) && !alert.hasAttribute("tabindex")) alert.setAttribute("tabindex", "-1");
      return alert;
    }
    return container.querySelector("[aria-invalid=true]");
  }
  function focusAndReveal(element) {
    element.focus({ preventScroll: true });
    element.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // Whatever a link or form asks, a response aimed at #modal-root fills it (innerHTML) and never
  // replaces it: a link inheriting hx-swap="outerHTML" from its table once destroyed the root,
  // and the next dialog had nowhere to go.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "modal-root") event.detail.swapOverride = "innerHTML";
  });

  // A swap inside an open dialog (its body after a POST) keeps focus in the dialog; a refusal
  // swapped in anywhere else (a row's error) is revealed and focused too.
  document.addEventListener("htmx:afterSwap", function (event) {
    var elt = event.detail.elt;
    var target = event.detail.target;
    if (!target || !document.contains(target)) target = elt;
    if (!target || !target.closest) return;
    var dialog = target.closest("dialog[open]");
    if (dialog) {
      guardSecret(dialog);
      focusInto(dialog);
      return;
    }
    if (target.id === "modal-root") return;  // opened (and focused) by htmx:load
    var refusal = target.matches("[role=alert]") ? target : target.querySelector("[role=alert]");
    if (refusal) {
      if (!refusal.hasAttribute("tabindex")) refusal.setAttribute("tabindex", "-1");
      focusAndReveal(refusal);
    }
  });

  // Close and remove a dialog that was opened as a modal; one shown in place on a page without
  // JavaScript's help (<dialog open>) is removed the same way.
  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
    dialog.remove();
    returnFocus();
  }

  // Focus goes back to what opened the dialog (the link or button that loaded it), if still there.
  // If the opener was replaced meanwhile (its table reloaded), its successor with the same
  // accessible name gets the focus.
  var opener = null;
  var openerLabel = null;
  function returnFocus() {
    var target = opener;
    if (target && !document.contains(target)) {
      target = openerLabel ? document.querySelector("[aria-label=\"" + CSS.escape(openerLabel) + "\"]") : null;
    }
    if (target) target.focus();
    opener = null;
    openerLabel = null;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.getAttribute && elt.getAttribute("hx-target") === "#modal-root") {
      opener = elt;
      openerLabel = elt.getAttribute("aria-label");
    }
  });

  // A dialog that shows a secret once (data-secret) is not dismissed by Escape: only its Done
  // button, which says the secret was saved, closes it (as Stripe and GitHub do). closedby="none"
  // (guardSecret) already stops the browser; this covers browsers without it.
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
  document.addEventListener("DOMContentLoaded", function () {
    openDialogs(document);
    // A page that answers with a refusal (a redirect's error message, a form's errors) shows it.
    var main = document.getElementById("main");
    if (main && !document.querySelector("dialog[open]")) {
      var refusal = main.querySelector(".message.error, .form-error[role=alert]");
      if (refusal) {
        if (!refusal.hasAttribute("tabindex")) refusal.setAttribute("tabindex", "-1");
        focusAndReveal(refusal);
      }
    }
  });
})();
