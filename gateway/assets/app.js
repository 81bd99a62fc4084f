// The web app's only script. Everything works without it; it adds:
// - dialogs: focus moves into an opened dialog, Escape closes it, focus
//   returns to the button that opened it;
// - busy buttons: a submitted form's button is disabled and says what is
//   happening (data-busy), so a second click sends nothing twice.
(function () {
  "use strict";

  function openDialog(id, opener) {
    var modal = document.getElementById(id);
    if (!modal) return;
    modal.classList.add("open");
    modal.opener = opener;
    var first = modal.querySelector("[data-close], button, a, input");
    if (first) first.focus();
  }

  function closeDialog(modal) {
    modal.classList.remove("open");
    if (location.hash === "#" + modal.id) history.replaceState(null, "", location.pathname + location.search);
    if (modal.opener) modal.opener.focus();
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("a[data-dialog]");
    if (opener) {
      event.preventDefault();
      openDialog(opener.getAttribute("data-dialog"), opener);
      return;
    }
    var closer = event.target.closest("[data-close]");
    if (closer) {
      event.preventDefault();
      closeDialog(closer.closest(".modal"));
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector(".modal.open, .modal:target");
    if (open) closeDialog(open);
  });

  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[type=submit][data-busy]");
    if (!button) return;
    if (button.disabled) { event.preventDefault(); return; }
    // Disabled after the browser has taken the form's values.
    setTimeout(function () {
      button.disabled = true;
      button.textContent = button.getAttribute("data-busy");
    }, 0);
  });
})();
