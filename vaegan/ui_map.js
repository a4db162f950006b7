// The latent map: a plotly.js WebGL scatter inside a gr.HTML, run by Gradio as that component's `js_on_load`.
// Gradio provides `element` (the component's root node), `props` (its properties: `marks`, the A / B annotations),
// `watch(name, fn)`, `trigger(event, data)` (custom events heard in Python as `point_click` / `map_click`)
// and `server` (the Python server functions: `get_points`). `Plotly` is the plotly.js served from the page head.
const box = element.querySelector('.vaegan-map');
const note = element.querySelector('.vaegan-map-note');
const FILL = {closed: '#f28e2b', open: '#4e79a7'};
let lastPointClick = 0, lastMapClick = 0;

function unpack(text, Type) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Type(bytes.buffer);
}
function padded(values, share) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const pad = (hi - lo) * share || 1;
  return [lo - pad, hi + pad];
}
function ink() { return getComputedStyle(element).color || '#444'; }
function paper() {
  const dark = document.body.classList.contains('dark') || !!document.querySelector('.gradio-container.dark, .dark .gradio-container');
  return dark ? 'rgba(17,24,39,0.9)' : 'rgba(255,255,255,0.9)';
}
function marksLayout(marks) {
  const annotations = [], shapes = [];
  for (const m of marks || []) {
    // ax / ay / anchors come from Python: A's and B's labels lean away from each other, so they never overlap
    annotations.push({x: m.x, y: m.y, text: m.text, showarrow: true, arrowhead: 2, arrowwidth: 1.5,
      arrowcolor: m.color, ax: m.ax, ay: m.ay, xanchor: m.xanchor, yanchor: m.yanchor, bgcolor: paper(),
      bordercolor: m.color, borderwidth: 1.5, borderpad: 3, font: {size: 12, color: ink()}});
    shapes.push({type: 'circle', xref: 'x', yref: 'y', xsizemode: 'pixel', ysizemode: 'pixel',
      xanchor: m.x, yanchor: m.y, x0: -9, x1: 9, y0: -9, y1: 9, line: {color: m.color, width: 3}});
  }
  return {annotations, shapes};
}
// On a narrow map (a phone) the legend and Plotly's toolbar would share the top edge: the legend moves below
// the map, the toolbar stays visible (touch screens have no hover to reveal it) and keeps only the zoom buttons.
const NARROW_PX = 600;
function isNarrow() { return box.clientWidth < NARROW_PX; }
function legendLayout(narrow) {
  return narrow ? {orientation: 'h', x: 0, y: 0, yanchor: 'top', itemsizing: 'constant'}
                : {orientation: 'h', x: 0, y: 1.0, yanchor: 'bottom', itemsizing: 'constant'};
}
function plotConfig(narrow) {
  return {responsive: true, displaylogo: false, scrollZoom: true, doubleClick: false, displayModeBar: narrow ? true : 'hover',
    modeBarButtonsToRemove: ['select2d', 'lasso2d', 'toImage'].concat(narrow ? ['zoom2d', 'pan2d', 'autoScale2d'] : [])};
}
function hint(n, narrow) {
  const how = narrow ? 'Drag to pan; zoom with + and − above the map.' : 'Drag to pan, scroll to zoom.';
  return `${n.toLocaleString()} eyes. ${narrow ? 'Tap' : 'Click'} a dot to decode it, or empty space to decode a blend of the nearest dots. ${how}`;
}
function showMarks() { if (box.dataset.ready === '1') Plotly.relayout(box, marksLayout(props.marks)); }
function recolour() {
  if (box.dataset.ready !== '1') return;
  Plotly.relayout(box, Object.assign({'font.color': ink(), 'modebar.activecolor': ink()}, marksLayout(props.marks)));
}

async function draw() {
  if (typeof Plotly === 'undefined') throw new Error('plotly.js did not load');
  const data = await server.get_points();
  if (!data || !data.n) { note.textContent = 'This model has no latent map.'; return; }
  const x = unpack(data.x, Float32Array), y = unpack(data.y, Float32Array), labels = unpack(data.labels, Uint8Array);
  const groups = data.names.map(() => []);
  for (let i = 0; i < labels.length; i++) groups[labels[i]].push(i);
  const order = groups.map((_, k) => k).sort((a, b) => groups[b].length - groups[a].length);  // minority drawn last, on top
  const size = labels.length > 50000 ? 3 : labels.length > 5000 ? 4 : 6;
  const traces = order.map(k => {
    const index = groups[k], name = data.names[k];
    return {type: 'scattergl', mode: 'markers', name: `${name} (${index.length.toLocaleString()})`,
      x: Float32Array.from(index, i => x[i]), y: Float32Array.from(index, i => y[i]), customdata: index,
      marker: {size: size, color: FILL[name] || '#888', opacity: 0.75},
      hovertemplate: `${name} eye #%{customdata}<extra></extra>`};
  });
  let narrow = isNarrow();
  const axis = {showticklabels: false, zeroline: false, showgrid: true, gridcolor: 'rgba(128,128,128,0.18)', ticks: ''};
  const layout = Object.assign({
    margin: {l: 10, r: 10, t: 36, b: 10}, paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
    font: {color: ink(), size: 13}, dragmode: 'pan', hovermode: 'closest', uirevision: 'keep',
    legend: legendLayout(narrow),
    modebar: {bgcolor: 'rgba(0,0,0,0)', color: 'rgba(128,128,128,0.75)', activecolor: ink()},
    // copies: Plotly writes each axis's range back into its object. Room above and below the points for the
    // A / B labels, which go above the upper mark and below the lower one.
    xaxis: {...axis}, yaxis: {...axis, range: padded(y, 0.12)},
  }, marksLayout(props.marks));
  await Plotly.newPlot(box, traces, layout, plotConfig(narrow));
  box.on('plotly_click', ev => {
    const point = ev.points && ev.points[0];
    if (!point || point.customdata === undefined) return;
    lastPointClick = performance.now();
    trigger('point_click', {index: point.customdata});
  });
  // Plotly reports clicks on points only; a click elsewhere on the plot area decodes a blend of the nearest points.
  box.addEventListener('click', ev => {
    const now = performance.now();
    if (now - lastPointClick < 250 || now - lastMapClick < 250) return;  // handled, or Plotly's re-dispatched copy
    const layout = box._fullLayout;
    if (!layout || !ev.target.closest || !ev.target.closest('.nsewdrag')) return;
    const hover = box._hoverdata && box._hoverdata[0];
    if (hover && hover.customdata !== undefined) {  // a quick second click on a point (Plotly's double-click)
      lastPointClick = now;
      trigger('point_click', {index: hover.customdata});
      return;
    }
    const rect = box.getBoundingClientRect();
    const px = ev.clientX - rect.left - layout.xaxis._offset, py = ev.clientY - rect.top - layout.yaxis._offset;
    if (px < 0 || py < 0 || px > layout.xaxis._length || py > layout.yaxis._length) return;
    lastMapClick = now;
    trigger('map_click', {x: layout.xaxis.p2l(px), y: layout.yaxis.p2l(py)});
  });
  box.dataset.ready = '1';
  note.textContent = hint(labels.length, narrow);
  new ResizeObserver(() => {  // a phone turned, a window resized: switch layouts when the map crosses NARROW_PX
    if (isNarrow() === narrow) return;
    narrow = isNarrow();
    Plotly.react(box, box.data, Object.assign({}, box.layout, {legend: legendLayout(narrow)}), plotConfig(narrow));
    note.textContent = hint(labels.length, narrow);
  }).observe(box);
  new MutationObserver(recolour).observe(document.body, {attributes: true, attributeFilter: ['class']});
}

watch('marks', showMarks);
draw().catch(error => { note.textContent = `The map could not be drawn: ${error.message}`; console.warn(error); });
