// The usage dashboard's script (runs inside the webview, bundled with Chart.js by esbuild into
// dist/webview/dashboard.js). It renders what the extension posts ({ type: 'snapshot', snapshot, ... });
// it has no network access (the CSP allows no connections) and reads every colour from the VS Code theme.
import Chart from 'chart.js/auto';

const vscode = acquireVsCodeApi();
const charts = {};

function themeColor(name, fallback) {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

function palette() {
  return ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'].map((n, i) =>
    themeColor(n, ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'][i]),
  );
}

function usd(n) {
  if (!n) return '$0.00';
  return Math.abs(n) < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

function tokens(u) {
  return u.input + u.output + u.cacheWrite5m + u.cacheWrite1h + u.cacheRead;
}

function draw(id, config) {
  const fg = themeColor('--vscode-foreground', '#ccc');
  const grid = themeColor('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
  Chart.defaults.color = fg;
  Chart.defaults.borderColor = grid;
  Chart.defaults.font.family = themeColor('--vscode-font-family', 'sans-serif');
  if (charts[id]) {
    charts[id].data = config.data;
    charts[id].update('none');
    return;
  }
  const canvas = document.getElementById(id);
  charts[id] = new Chart(canvas, { ...config, options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options } });
}

function text(el, value) {
  el.textContent = value;
  return el;
}

function cell(tr, value, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  tr.appendChild(text(td, value));
}

function render(msg) {
  const s = msg.snapshot;
  const colors = palette();
  text(document.getElementById('summary'), `Today ${usd(s.todayTotals.costUsd)} in ${s.todayTotals.requests} requests · this month ${usd(s.monthTotals.costUsd)} in ${s.monthTotals.requests} requests · profile ${msg.profile} · gateway ${msg.url}${s.inFlight ? ` · ${s.inFlight} streaming` : ''}`);
  const labels = s.days.map((d) => d.date.slice(5));
  draw('spendByDay', { type: 'bar', data: { labels, datasets: [{ label: 'Spend (USD)', data: s.days.map((d) => d.costUsd), backgroundColor: colors[0] }] } });
  const kinds = [
    ['Input', (u) => u.input],
    ['Output', (u) => u.output],
    ['Cache write', (u) => u.cacheWrite5m + u.cacheWrite1h],
    ['Cache read', (u) => u.cacheRead],
  ];
  draw('tokensByDay', {
    type: 'bar',
    data: { labels, datasets: kinds.map(([label, f], i) => ({ label, data: s.days.map((d) => f(d.usage)), backgroundColor: colors[i] })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true } } },
  });
  const models = Object.entries(s.monthByModel).sort((a, b) => b[1].costUsd - a[1].costUsd);
  draw('spendByModel', { type: 'doughnut', data: { labels: models.map(([m]) => m), datasets: [{ data: models.map(([, t]) => t.costUsd), backgroundColor: colors }] } });
  const projects = Object.entries(s.monthByProject).sort((a, b) => b[1].costUsd - a[1].costUsd);
  draw('spendByProject', { type: 'bar', data: { labels: projects.map(([p]) => p), datasets: [{ label: 'Spend this month (USD)', data: projects.map(([, t]) => t.costUsd), backgroundColor: colors[2] }] }, options: { indexAxis: 'y' } });

  const budgets = document.getElementById('budgets');
  budgets.replaceChildren();
  if (!s.budgets.length) budgets.appendChild(text(document.createElement('p'), 'No budgets configured (setting claudeGateway.budgets).'));
  for (const b of s.budgets) {
    const row = document.createElement('div');
    row.className = 'budget';
    row.appendChild(text(document.createElement('span'), `${b.scope} · ${b.period} · ${usd(b.spentUsd)} of ${usd(b.usd)} · resets ${new Date(b.resetsAt).toLocaleString()}`));
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = b.fraction >= 1 ? 'fill error' : b.fraction >= 0.8 ? 'fill warning' : 'fill';
    fill.style.width = `${Math.min(100, Math.round(b.fraction * 100))}%`;
    bar.appendChild(fill);
    row.appendChild(bar);
    budgets.appendChild(row);
  }

  const body = document.querySelector('#recent tbody');
  body.replaceChildren();
  for (const c of s.recent) {
    const tr = document.createElement('tr');
    tr.dataset.id = c.id;
    cell(tr, new Date(c.t).toLocaleTimeString());
    cell(tr, c.model);
    cell(tr, c.profile);
    cell(tr, c.project ?? '');
    cell(tr, String(tokens(c.usage)), 'num');
    cell(tr, usd(c.costUsd), 'num');
    cell(tr, `${c.latencyMs} ms`, 'num');
    cell(tr, c.status === 'ok' ? String(c.httpStatus) : `${c.status} ${c.httpStatus}`, c.status === 'ok' ? '' : 'bad');
    body.appendChild(tr);
  }
  if (!s.recent.length) {
    const tr = document.createElement('tr');
    const td = text(document.createElement('td'), 'No calls yet.');
    td.colSpan = 8;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  document.body.dataset.calls = String(s.recent.length);
}

window.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'snapshot') render(e.data);
});
vscode.postMessage({ type: 'ready' });
