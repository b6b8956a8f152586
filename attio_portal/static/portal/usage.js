// The usage page's charts (admin/usage.html), drawn with uPlot from the JSON the page
// carries (mcp_gateway/usage.py, Usage.chart_data).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("usage-data").textContent);
  var colours = ["#417690", "#e07b39", "#5b9e4d", "#a2569b", "#c9a227", "#3d8fd1",
                 "#b94a48", "#6c757d", "#2a9d8f"];

  function draw(element, series, values, valueFormat) {
    var width = element.clientWidth || 460;
    var options = {
      width: width,
      height: 220,
      series: [{}].concat(series.map(function (label, n) {
        return { label: label, stroke: colours[n % colours.length], width: 2,
                 value: valueFormat ? function (u, v) { return v == null ? "–" : valueFormat(v); } : undefined };
      })),
      axes: [{}, { values: valueFormat ? function (u, ticks) { return ticks.map(valueFormat); } : undefined }],
      scales: { x: { time: true } },
      // The days are UTC days: label them so, not in the browser's time zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
    };
    new uPlot(options, [data.days].concat(values), element);
  }

  function percent(v) { return (v * 100).toFixed(1) + " %"; }

  document.querySelectorAll("#usage .chart").forEach(function (element) {
    var name = element.dataset.chart;
    if (name === "calls") {
      draw(element, ["Calls"], [data.calls]);
    } else if (name === "error_rate") {
      draw(element, ["Error rate"], [data.error_rate], percent);
    } else if (name === "latency") {
      draw(element, ["p50", "p95"], [data.p50_ms, data.p95_ms]);
    } else {
      var breakdown = data[name];
      draw(element, breakdown.map(function (s) { return s.label; }),
           breakdown.map(function (s) { return s.per_day; }));
    }
    element.dataset.drawn = "true";
  });
})();
