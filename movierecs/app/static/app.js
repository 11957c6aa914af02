
"use strict";
const KEY = 'movierecs.ratings', $ = id => document.getElementById(id);
const STARS = JSON.parse(document.body.dataset.stars);
let ratings = {}, searchSeq = 0, recSeq = 0, nextSeq = 0, timer = null;
try { const r = JSON.parse(localStorage.getItem(KEY)); if (r && typeof r === 'object' && !Array.isArray(r)) ratings = r; } catch (e) {}
function save() { try { localStorage.setItem(KEY, JSON.stringify(ratings)); } catch (e) {} }
function el(tag, props, ...kids) { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; }
function stars(current) {
  return el('span', {className: 'stars'}, ...STARS.map(s => {
    const b = el('button', {type: 'button', className: 'star', textContent: s <= current ? '\u2605' : '\u2606', title: s + ' \u2605'});
    b.dataset.stars = s; b.setAttribute('aria-label', s + ' stars'); return b; }));
}
function showRated() {
  const titles = Object.keys(ratings);
  $('rated').replaceChildren(...titles.map(t => {
    const li = el('li', {}, el('a', {href: '/movie?title=' + encodeURIComponent(t), textContent: t}),
                  el('span', {}, stars(ratings[t]), el('button', {type: 'button', className: 'remove', textContent: '\u00d7', title: 'remove'})));
    li.dataset.title = t; return li; }));
  $('no-ratings').hidden = titles.length > 0;
}
async function fill(id, url, body, current) {  // POST body to url and show the HTML it answers in #id, unless a newer call came
  $(id).setAttribute('aria-busy', 'true');
  try {
    const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
    const html = await r.text();
    if (current()) $(id).innerHTML = html;
  } catch (e) { if (current()) $(id).replaceChildren(el('p', {className: 'error', textContent: 'The server did not answer: ' + e})); }
  if (current()) $(id).removeAttribute('aria-busy');
}
async function refresh() {
  showRated();
  refreshNext();
  const seq = ++recSeq;
  if (!Object.keys(ratings).length) { $('recs').replaceChildren(el('p', {className: 'hint', textContent: 'Rate a movie to see what to watch next.'})); return; }
  await fill('recs', '/recommendations', {ratings}, () => seq === recSeq);
}
async function refreshNext() {  // the order of the ratings is the history: what to watch next after it
  if (!$('next')) return;
  const seq = ++nextSeq, history = Object.keys(ratings);
  if (!history.length) { $('next').replaceChildren(); return; }
  await fill('next', '/next', {history}, () => seq === nextSeq);
}
async function search() {
  const q = $('q').value.trim(), seq = ++searchSeq;
  if (!q) { $('matches').replaceChildren(); return; }
  const r = await fetch('/search?q=' + encodeURIComponent(q));
  const html = await r.text();
  if (seq === searchSeq) $('matches').innerHTML = html;
}
document.addEventListener('click', e => {
  const b = e.target.closest('button.star, button.remove'), li = b && b.closest('li[data-title]');
  if (!li) return;
  const t = li.dataset.title;
  if (b.classList.contains('remove')) delete ratings[t]; else ratings[t] = Number(b.dataset.stars);
  save(); refresh();
  if (li.closest('#matches')) { $('q').value = ''; $('matches').replaceChildren(); $('q').focus(); }
});
$('q').addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 120); });
$('search-form').addEventListener('submit', e => { e.preventDefault(); clearTimeout(timer); search(); });
refresh();
