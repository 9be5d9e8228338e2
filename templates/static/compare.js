// atlas: the compare page - N (model, method, seed) columns side by side for every class, driven by the
// class index (search-index.js). Columns are named a, b, c, ... and kept in the address as
// ?a=model|method|seed&b=...&q=filter (&show=neurons: the neurons with images instead of the classes). Uses the helpers that atlas.js exports as window.atlas.
(function () {
  "use strict";
  var A = window.atlas, ROOT = A.ROOT, $ = A.$, $$ = A.$$, el = A.el, fill = A.fill;
  var parseQuery = A.parseQuery, rank = A.rank;
  var LETTERS = "abcdefgh", FIELDS = ["model", "method", "seed"];
  var form = $("[data-compare]");
  if (form) A.withIndex(function (idx) { A.withVersions(function (versions) { compare(form, idx, versions); }); });

  function compare(form, idx, versions) {
    var rows = $("[data-compare-rows]"), more = $("[data-compare-more]"), count = $("[data-compare-count]");
    var add = $("[data-compare-add]", form);
    var params = new URLSearchParams(window.location.search), PAGE = 48, limit = PAGE;
    var missing = {};
    Object.keys(idx.missing || {}).forEach(function (k) {
      var s = {}; idx.missing[k].forEach(function (id) { s[id] = true; }); missing[k] = s;
    });
    var titles = {}, names = {}, owner = {}, main = idx.models.length ? idx.models[0].slug : "";
    idx.methods.forEach(function (m) { titles[m.slug] = m.title; });
    idx.models.forEach(function (m) { names[m.slug] = m.name; owner[m.slug] = m.labels || main; });
    // class entries per label set (a lab's own model has its own): byOwner[owner][id] = entry
    var byOwner = {};
    idx.classes.forEach(function (c) { var o = c[4] || main; (byOwner[o] = byOwner[o] || {})[c[0]] = c; });
    var template = $("fieldset[data-column]", form);

    var columns = function () { return $$("fieldset[data-column]", form); };
    var letter = function (fs) { return fs.getAttribute("data-column"); };
    var number = function () {
      columns().forEach(function (fs, i) {
        $("legend", fs).textContent = "Column " + (i + 1);
        var rm = $("[data-compare-remove]", fs);
        rm.textContent = "Remove column " + (i + 1);
        rm.hidden = columns().length <= 2;
      });
      add.disabled = columns().length >= LETTERS.length;
    };
    var addColumn = function (values) {
      var used = columns().map(letter), name = LETTERS.split("").filter(function (l) { return used.indexOf(l) < 0; })[0];
      var fs = template.cloneNode(true);
      fs.setAttribute("data-column", name);
      FIELDS.forEach(function (f) {
        var sel = $("select[name$='-" + f + "']", fs);
        sel.name = name + "-" + f;
        sel.value = $("select[name$='-" + f + "']", template).value;
      });
      form.insertBefore(fs, add);
      if (values) set(fs, values);
      number();
      return fs;
    };
    var set = function (fs, v) {
      FIELDS.forEach(function (f, i) {
        var sel = $("select[name$='-" + f + "']", fs);
        if (v[i] !== undefined && $$("option", sel).some(function (o) { return o.value === String(v[i]); })) sel.value = String(v[i]);
      });
    };
    var get = function (fs) {
      var v = {};
      FIELDS.forEach(function (f) { v[f] = $("select[name$='-" + f + "']", fs).value; });
      return v;
    };

    // the choice from the address (?a=..&b=..&c=..), else one column per model (several checkpoints of one
    // architecture), else the first two methods or seeds
    var asked = LETTERS.split("").filter(function (l) { return params.get(l); });
    if (asked.length) {
      asked.forEach(function (l, i) {
        var v = params.get(l).split("|");
        if (i < 2) set(columns()[i], v); else addColumn(v);
      });
    } else if (idx.models.length > 1) {
      idx.models.slice(0, LETTERS.length).forEach(function (m, i) {
        var v = [m.slug, get(columns()[0]).method, get(columns()[0]).seed];
        if (i < 2) set(columns()[i], v); else addColumn(v);
      });
    } else if (idx.methods.length < 2 && idx.seeds.length > 1) {
      set(columns()[1], [undefined, undefined, idx.seeds[1]]);
    }
    if (params.get("q")) form.elements.q.value = params.get("q");
    var neurons = idx.neurons || { list: [], done: {}, patterns: {} }, show = form.elements.show;
    if (neurons.list.length) {
      $("[data-compare-show]", form).hidden = false;
      if (params.get("show") === "neurons") show.value = "neurons";
    }
    number();
    form.hidden = false;

    var cell = function (v, c) {
      var fig = el("figure", { "class": "fig" });
      var label = titles[v.method] + " · " + names[v.model] + " · seed " + v.seed;
      var own = (byOwner[owner[v.model]] || {})[c[0]];
      var cname = own ? own[1] : c[1];
      if (!own || (missing[v.model + "|" + v.method + "|" + v.seed] && missing[v.model + "|" + v.method + "|" + v.seed][c[0]])) {
        fig.appendChild(el("div", { "class": "placeholder" }, "not built"));
      } else {
        var a = el("a", { href: ROOT + fill(idx.patterns.figure, { model: v.model, method: v.method, id: c[0], seed: v.seed }) });
        var version = A.versionOf(versions, idx, v.model, v.method, v.seed, c[0]);
        a.appendChild(el("img", { src: A.ASSETS + fill(idx.patterns.view, { model: v.model, method: v.method, id: c[0], seed: v.seed, version: version }),
                                  loading: "lazy", decoding: "async", alt: "Feature visualization by " + label + " of " + cname + " (" + c[0] + ")" }));
        fig.appendChild(a);
      }
      var cap = el("figcaption", {}, label);
      if (own && cname !== c[1]) cap.appendChild(el("span", { "class": "other-name" }, cname));
      fig.appendChild(cap);
      return fig;
    };
    var tfill = function (pattern, v, slug) {
      return pattern.replace("{model}", v.model).replace("{method}", v.method).replace("{target}", slug)
        .replace("{seed}", String(v.seed));
    };
    var ncell = function (v, n) {
      var fig = el("figure", { "class": "fig" });
      var label = titles[v.method] + " · " + names[v.model] + " · seed " + v.seed;
      if ((neurons.done[v.model + "|" + v.method + "|" + v.seed] || []).indexOf(n[0]) < 0) {
        fig.appendChild(el("div", { "class": "placeholder" }, "not built"));
      } else {
        var a = el("a", { href: ROOT + tfill(neurons.patterns.figure, v, n[0]) });
        a.appendChild(el("img", { src: A.ASSETS + neurons.views[v.model + "|" + v.method + "|" + v.seed][n[0]], loading: "lazy", decoding: "async",
                                  alt: "Feature visualization by " + label + " of neuron " + n[1] }));
        fig.appendChild(a);
      }
      fig.appendChild(el("figcaption", {}, label));
      return fig;
    };
    var renderNeurons = function (cols) {
      var q = form.elements.q.value.trim().toLowerCase();
      var hits = neurons.list.filter(function (n) { return !q || n[1].toLowerCase().indexOf(q) >= 0; });
      hits.slice(0, limit).forEach(function (n) {
        var row = el("section", { "class": "crow" });
        row.appendChild(el("h2", {}, "Neuron " + n[1]));
        var pair = el("div", { "class": "pair" + (cols.length > 2 ? " many" : "") });
        pair.style.setProperty("--cols", String(cols.length));
        cols.forEach(function (v) { pair.appendChild(ncell(v, n)); });
        row.appendChild(pair);
        rows.appendChild(row);
      });
      return hits.length;
    };
    var render = function () {
      var cols = columns().map(get), query = parseQuery(form.elements.q.value);
      var first = byOwner[owner[cols[0].model]] || {};
      var hits = Object.keys(first).map(function (k) { return first[k]; })
        .sort(function (x, y) { return x[0] - y[0]; })
        .filter(function (c) { return rank(query, c[0], c[3], c[1].toLowerCase(), c[2].toLowerCase()) >= 0; });
      rows.textContent = "";
      rows.classList.toggle("wide", cols.length > 2);
      var what = "classes", total = hits.length;
      if (show.value === "neurons") { what = "neurons"; total = renderNeurons(cols); hits = []; }
      hits.slice(0, limit).forEach(function (c) {
        var row = el("section", { "class": "crow" });
        var h = el("h2", {});
        h.appendChild(el("a", { href: ROOT + fill(idx.patterns["class"], { model: cols[0].model, id: c[0] }) }, c[1] + " "));
        h.lastChild.appendChild(el("small", {}, "#" + c[0]));
        row.appendChild(h);
        var pair = el("div", { "class": "pair" + (cols.length > 2 ? " many" : "") });
        pair.style.setProperty("--cols", String(cols.length));
        cols.forEach(function (v) { pair.appendChild(cell(v, c)); });
        row.appendChild(pair);
        rows.appendChild(row);
      });
      count.textContent = Math.min(limit, total) + " of " + total + " " + what;
      more.hidden = total <= limit;
      var p = "?" + columns().map(function (fs) {
        var v = get(fs);
        return letter(fs) + "=" + [v.model, v.method, v.seed].join("|");
      }).join("&") + (form.elements.q.value ? "&q=" + encodeURIComponent(form.elements.q.value) : "") +
        (show.value === "neurons" ? "&show=neurons" : "");
      try { window.history.replaceState(null, "", p); } catch (e) { /* file:// may refuse; the page still works */ }
    };
    // the text box re-renders on "input"; its "change" (fired on blur, e.g. by a click on an image) must
    // not rebuild the rows under the pointer
    form.addEventListener("change", function (ev) { if (ev.target !== form.elements.q) { limit = PAGE; render(); } });
    form.elements.q.addEventListener("input", function () { limit = PAGE; render(); });
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });
    form.addEventListener("click", function (ev) {
      var rm = ev.target.closest && ev.target.closest("[data-compare-remove]");
      if (rm && columns().length > 2) {
        var fs = rm.closest("fieldset");
        if (fs === template) template = columns().filter(function (f) { return f !== fs; })[0];
        fs.parentNode.removeChild(fs);
        number(); render();
      }
    });
    add.addEventListener("click", function () {
      var last = columns()[columns().length - 1], v = get(last);
      addColumn([v.model, v.method, v.seed]);
      render();
    });
    more.addEventListener("click", function () { limit += PAGE; render(); });
    render();
  }
})();
