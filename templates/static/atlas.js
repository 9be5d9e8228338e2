// atlas: search filter for class grids and image / transparency / masked toggles. Plain JS, no libraries.
(function () {
  "use strict";
  var input = document.querySelector("[data-search-input]");
  if (input) {
    var filter = function () {
      var q = input.value.trim().toLowerCase();
      var grids = document.querySelectorAll("[data-grid]");
      grids.forEach(function (grid) {
        var shown = 0;
        grid.querySelectorAll("[data-search]").forEach(function (card) {
          var hay = " " + card.getAttribute("data-search") + " ";
          var hit = !q || hay.indexOf(q) !== -1 || hay.indexOf(" " + q.replace(/^#/, "") + " ") !== -1;
          card.hidden = !hit;
          if (hit) shown++;
        });
        var empty = grid.parentNode.querySelector("[data-empty]");
        if (empty) empty.hidden = shown !== 0;
      });
    };
    input.addEventListener("input", filter);
    var params = new URLSearchParams(window.location.search);
    if (params.get("q")) { input.value = params.get("q"); filter(); }
  }
  document.querySelectorAll("[data-fig]").forEach(function (fig) {
    fig.querySelectorAll("[data-show]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var want = btn.getAttribute("data-show");
        fig.querySelectorAll("[data-view]").forEach(function (img) {
          img.hidden = img.getAttribute("data-view") !== want;
        });
        fig.querySelectorAll("[data-show]").forEach(function (b) {
          b.setAttribute("aria-pressed", b === btn ? "true" : "false");
        });
      });
    });
  });
})();
