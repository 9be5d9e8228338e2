// atlas: hover / focus preview for t-SNE points (shows the visualization's thumbnail). Plain JS, no libraries.
(function () {
  "use strict";
  document.querySelectorAll("[data-tsne]").forEach(function (block) {
    var wrap = block.querySelector(".tsne-wrap");
    var tip = block.querySelector(".tsne-tip");
    if (!wrap || !tip) return;
    var img = tip.querySelector("img");
    var cap = tip.querySelector("figcaption");
    var show = function (pt) {
      img.src = pt.getAttribute("data-src");
      img.alt = pt.getAttribute("data-label");
      cap.textContent = pt.getAttribute("data-label");
      var box = wrap.getBoundingClientRect();
      var r = pt.getBoundingClientRect();
      var x = r.left - box.left + r.width + 8;
      var y = r.top - box.top - 20;
      if (x + 160 > box.width) x = Math.max(0, r.left - box.left - 168);
      tip.style.left = x + "px";
      tip.style.top = Math.max(0, y) + "px";
      tip.hidden = false;
    };
    var hide = function () { tip.hidden = true; };
    block.querySelectorAll("a[data-src]").forEach(function (pt) {
      pt.addEventListener("mouseenter", function () { show(pt); });
      pt.addEventListener("focus", function () { show(pt); });
      pt.addEventListener("mouseleave", hide);
      pt.addEventListener("blur", hide);
    });
  });
})();
