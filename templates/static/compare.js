// atlas: the compare page - two (model, method, seed) choices side by side for every class, driven by the
// class index (search-index.js). Uses the helpers that atlas.js exports as window.atlas.
(function () {
  "use strict";
  var A = window.atlas, ROOT = A.ROOT, $ = A.$, $$ = A.$$, el = A.el, fill = A.fill;
  var parseQuery = A.parseQuery, rank = A.rank;
  var form = $("[data-compare]");
  if (form) A.withIndex(function (idx) { A.withVersions(function (versions) { compare(form, idx, versions); }); });

  function compare(form, idx, versions) {
    var rows = $("[data-compare-rows]"), more = $("[data-compare-more]"), count = $("[data-compare-count]");
    var params = new URLSearchParams(window.location.search), PAGE = 48, limit = PAGE;
    var missing = {};
    Object.keys(idx.missing || {}).forEach(function (k) {
      var s = {}; idx.missing[k].forEach(function (id) { s[id] = true; }); missing[k] = s;
    });
    var titles = {}, names = {};
    idx.methods.forEach(function (m) { titles[m.slug] = m.title; });
    idx.models.forEach(function (m) { names[m.slug] = m.name; });
    ["a", "b"].forEach(function (side) {
      var v = (params.get(side) || "").split("|");
      ["model", "method", "seed"].forEach(function (f, i) {
        var sel = form.elements[side + "-" + f];
        if (v[i] && $$("option", sel).some(function (o) { return o.value === v[i]; })) sel.value = v[i];
      });
    });
    if (!params.get("b") && idx.methods.length < 2 && idx.models.length > 1) form.elements["b-model"].value = idx.models[1].slug;
    else if (!params.get("b") && idx.methods.length < 2 && idx.seeds.length > 1) form.elements["b-seed"].value = String(idx.seeds[1]);
    if (params.get("q")) form.elements.q.value = params.get("q");
    form.hidden = false;
    var side = function (s) {
      return { model: form.elements[s + "-model"].value, method: form.elements[s + "-method"].value,
               seed: form.elements[s + "-seed"].value };
    };
    var cell = function (v, c) {
      var fig = el("figure", { "class": "fig" });
      var label = titles[v.method] + " · " + names[v.model] + " · seed " + v.seed;
      if (missing[v.model + "|" + v.method + "|" + v.seed] && missing[v.model + "|" + v.method + "|" + v.seed][c[0]]) {
        fig.appendChild(el("div", { "class": "placeholder" }, "not built"));
      } else {
        var a = el("a", { href: ROOT + fill(idx.patterns.figure, { model: v.model, method: v.method, id: c[0], seed: v.seed }) });
        var version = A.versionOf(versions, idx, v.model, v.method, v.seed, c[0]);
        a.appendChild(el("img", { src: A.ASSETS + fill(idx.patterns.view, { model: v.model, method: v.method, id: c[0], seed: v.seed, version: version }),
                                  loading: "lazy", decoding: "async", alt: "Feature visualization by " + label + " of " + c[1] + " (" + c[0] + ")" }));
        fig.appendChild(a);
      }
      fig.appendChild(el("figcaption", {}, label));
      return fig;
    };
    var render = function () {
      var a = side("a"), b = side("b"), query = parseQuery(form.elements.q.value);
      var hits = idx.classes.filter(function (c) { return rank(query, c[0], c[3], c[1].toLowerCase(), c[2].toLowerCase()) >= 0; });
      rows.textContent = "";
      hits.slice(0, limit).forEach(function (c) {
        var row = el("section", { "class": "crow" });
        var h = el("h2", {});
        h.appendChild(el("a", { href: ROOT + fill(idx.patterns["class"], { model: a.model, id: c[0] }) }, c[1] + " "));
        h.lastChild.appendChild(el("small", {}, "#" + c[0]));
        row.appendChild(h);
        var pair = el("div", { "class": "pair" });
        pair.appendChild(cell(a, c));
        pair.appendChild(cell(b, c));
        row.appendChild(pair);
        rows.appendChild(row);
      });
      count.textContent = Math.min(limit, hits.length) + " of " + hits.length + " classes";
      more.hidden = hits.length <= limit;
      var p = "?a=" + [a.model, a.method, a.seed].join("|") + "&b=" + [b.model, b.method, b.seed].join("|") +
        (form.elements.q.value ? "&q=" + encodeURIComponent(form.elements.q.value) : "");
      try { window.history.replaceState(null, "", p); } catch (e) { /* file:// may refuse; the page still works */ }
    };
    // the text box re-renders on "input"; its "change" (fired on blur, e.g. by a click on an image) must
    // not rebuild the rows under the pointer
    form.addEventListener("change", function (ev) { if (ev.target !== form.elements.q) { limit = PAGE; render(); } });
    form.elements.q.addEventListener("input", function () { limit = PAGE; render(); });
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });
    more.addEventListener("click", function () { limit += PAGE; render(); });
    render();
  }
})();
