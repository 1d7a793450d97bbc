// The console's script (served at /console/console.js). The WebSocket goes through the
// broker's JavaScript client (clients/js/dist, served at /console/pubsub-client.js), so the page
// reconnects and resumes like any client and shows reconnects and gaps; REST goes through the
// client's `rest`. Both carry the token from the token field. A chart draws messages published
// per second and open WebSocket connections from /stats.
// Everything a message or a response carries is shown with textContent, never parsed as HTML.
import { PubSubClient, rest } from './pubsub-client.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'pubsub-console-token';
const STATS_EVERY_MS = 1000;
const CHART_POINTS = 60;

let client = null;
let connecting = false;
let gaps = 0;

const token = () => $('token').value.trim();

function show(id, text, ok) {
  $(id).textContent = text;
  $(id).className = ok ? 'ok' : 'error';
}

function log(text, isError) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (isError) li.className = 'error';
  $('log').prepend(li);
}

const describeError = (body) => (body && body.error
  ? `${body.error.code}: ${body.error.message}`
  : JSON.stringify(body));

// ---- the WebSocket, through the client ------------------------------------------------------

function onStatus(status) {
  $('reconnects').textContent = String(Math.max(0, status.connections - 1));
  if (status.connected) {
    $('status').textContent = 'connected';
    if (status.connections > 1) log(`reconnected (connection ${status.connections}); subscriptions resume from their last seq`);
  } else if (client) {
    $('status').textContent = 'reconnecting';
    log(`connection lost: ${status.lastError}`, true);
  }
}

async function connect() {
  if (client || connecting) return;
  connecting = true;
  $('status').textContent = 'connecting';
  try {
    client = await PubSubClient.connect(location.origin, { token: token() || undefined, onStatus });
    $('status').textContent = 'connected';
    log('connected');
  } catch (error) {
    $('status').textContent = 'disconnected';
    log(`cannot connect: ${error.message}`, true);
  } finally {
    connecting = false;
  }
}

function disconnect() {
  if (!client) return;
  const closing = client;
  client = null;
  closing.close();
  $('status').textContent = 'disconnected';
  $('subscriptions').replaceChildren();
  log('disconnected');
}

function setSubscribed(topic, subscribed) {
  const list = $('subscriptions');
  const existing = [...list.children].find((li) => li.dataset.topic === topic);
  if (subscribed && !existing) {
    const li = document.createElement('li');
    li.dataset.topic = topic;
    li.textContent = topic;
    list.append(li);
  } else if (!subscribed && existing) {
    existing.remove();
  }
}

function addLine(topic, text, attributes) {
  const li = document.createElement('li');
  li.dataset.topic = topic;
  Object.assign(li.dataset, attributes);
  li.textContent = text;
  $('messages').prepend(li);
  return li;
}

function notice(topic, text) {
  addLine(topic, `${topic}: ${text}`, { notice: 'true' }).className = 'notice';
  log(`${topic}: ${text}`);
}

function onEvent(event) {
  switch (event.type) {
    case 'message':
      addLine(event.topic, `${event.topic} #${event.seq} ${JSON.stringify(event.message)}  (${event.publishedAt})`,
        { seq: String(event.seq) });
      break;
    case 'gap':
      gaps += 1;
      $('gaps').textContent = String(gaps);
      notice(event.topic, `gap: ${event.missed} messages after seq ${event.afterSeq} are no longer in history `
        + `(cause: ${event.cause}); next is seq ${event.nextSeq}`);
      break;
    case 'epoch_changed':
      notice(event.topic, `the topic was created again (epoch ${event.oldEpoch} -> ${event.newEpoch}); seq starts over`);
      break;
    case 'topic_deleted':
      notice(event.topic, 'the topic was deleted; subscription ended');
      setSubscribed(event.topic, false);
      break;
    case 'failed':
      notice(event.topic, `subscription failed: ${event.error.message}`);
      setSubscribed(event.topic, false);
      break;
    default:
  }
}

async function subscribe() {
  if (!client) return show('subscribe-result', 'not connected', false);
  const topic = $('topic').value;
  const replay = Number($('replay').value);
  try {
    const ack = await client.subscribe(topic, replay > 0 ? { last: replay } : {}, onEvent);
    setSubscribed(topic, true);
    show('subscribe-result', `subscribed to ${ack.topic}, ${ack.replayed} replayed, last seq ${ack.lastSeq}`, true);
  } catch (error) {
    show('subscribe-result', error.message, false);
  }
  return undefined;
}

async function unsubscribe() {
  if (!client) return show('subscribe-result', 'not connected', false);
  const topic = $('topic').value;
  try {
    await client.unsubscribe(topic);
    setSubscribed(topic, false);
    show('subscribe-result', `unsubscribed from ${topic}`, true);
  } catch (error) {
    show('subscribe-result', error.message, false);
  }
  return undefined;
}

async function publish() {
  let message;
  try {
    message = JSON.parse($('message').value);
  } catch (error) {
    return show('publish-result', `not JSON: ${error.message}`, false);
  }
  if (!client) return show('publish-result', 'not connected', false);
  const topic = $('topic').value;
  try {
    const seq = await client.publish(topic, message);
    show('publish-result', `published to ${topic}, seq ${seq}`, true);
  } catch (error) {
    show('publish-result', error.message, false);
  }
  return undefined;
}

// ---- REST ---------------------------------------------------------------------------------

async function createTopic() {
  const name = $('topic').value;
  try {
    const r = await rest(location.origin, '/topics', { method: 'POST', body: { name }, token: token() });
    show('create-result', r.ok ? `${r.status}: created ${r.body.name}` : `${r.status} ${describeError(r.body)}`, r.ok);
    await listTopics();
  } catch (error) {
    show('create-result', `request failed: ${error}`, false);
  }
}

async function listTopics() {
  try {
    const r = await rest(location.origin, '/topics', { token: token() });
    if (!r.ok) {
      $('topics').textContent = `${r.status} ${describeError(r.body)}`;
      return;
    }
    $('topics').replaceChildren(...r.body.topics.map((topic) => {
      const li = document.createElement('li');
      const pick = document.createElement('a');
      pick.href = '#';
      pick.textContent = topic.name;
      pick.onclick = (event) => { event.preventDefault(); $('topic').value = topic.name; };
      li.append(pick, ` (${topic.subscriber_count} subscribed)`);
      return li;
    }));
  } catch (error) {
    $('topics').textContent = `request failed: ${error}`;
  }
}

// ---- the chart ----------------------------------------------------------------------------

// Samples of /stats: `rate` is messages published per second since the sample before.
const samples = [];
let previous = null;

async function pollStats() {
  let r;
  try {
    r = await rest(location.origin, '/stats', { token: token() });
  } catch (error) {
    $('chart-legend').textContent = `/stats failed: ${error}`;
    return;
  }
  if (!r.ok) {
    $('chart-legend').textContent = `/stats: ${r.status} ${describeError(r.body)}`;
    return;
  }
  const now = performance.now();
  const sample = { t: now, published: r.body.messages_published, connections: r.body.connections };
  if (previous) {
    const seconds = (now - previous.t) / 1000;
    sample.rate = seconds > 0 ? Math.max(0, sample.published - previous.published) / seconds : 0;
    samples.push(sample);
    if (samples.length > CHART_POINTS) samples.shift();
    const canvas = $('chart');
    // What was drawn, readable from outside (the browser test compares it with the server).
    canvas.dataset.samples = JSON.stringify(samples.map(({ rate, published, connections }) => ({ rate, published, connections })));
    $('chart-legend').textContent = `${sample.rate.toFixed(1)} messages/s published, `
      + `${sample.connections} WebSocket connections`;
    draw(canvas);
  }
  previous = sample;
}

/** The smallest of 1, 2, 5 × 10^n at or above `value` (at least 1): the axis top. */
function niceTop(value) {
  let top = 1;
  while (top < value) top *= top.toString().startsWith('2') ? 2.5 : 2;
  return top;
}

function draw(canvas) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const pad = { left: 48, right: 48, top: 12, bottom: 20 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  ctx.clearRect(0, 0, width, height);
  ctx.font = '12px system-ui, sans-serif';
  const rateTop = niceTop(Math.max(...samples.map((s) => s.rate)));
  const connTop = niceTop(Math.max(...samples.map((s) => s.connections)));
  ctx.strokeStyle = '#e4e4e4';
  ctx.fillStyle = '#777';
  for (let i = 0; i <= 4; i += 1) {
    const y = pad.top + (plotH * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
  }
  const x = (i) => pad.left + (plotW * i) / (CHART_POINTS - 1);
  const line = (color, top, value) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    samples.forEach((s, i) => {
      const y = pad.top + plotH * (1 - value(s) / top);
      if (i === 0) ctx.moveTo(x(i), y);
      else ctx.lineTo(x(i), y);
    });
    ctx.stroke();
    ctx.lineWidth = 1;
  };
  line('#1f5fbf', rateTop, (s) => s.rate);
  line('#c05a00', connTop, (s) => s.connections);
  ctx.fillStyle = '#1f5fbf';
  ctx.textAlign = 'right';
  ctx.fillText(`${rateTop}/s`, pad.left - 6, pad.top + 10);
  ctx.fillText('0', pad.left - 6, pad.top + plotH);
  ctx.fillStyle = '#c05a00';
  ctx.textAlign = 'left';
  ctx.fillText(String(connTop), width - pad.right + 6, pad.top + 10);
  ctx.fillText('0', width - pad.right + 6, pad.top + plotH);
  ctx.fillStyle = '#777';
  ctx.fillText(`last ${CHART_POINTS} s`, pad.left, height - 4);
}

// ---- wiring ---------------------------------------------------------------------------------

$('token').value = sessionStorage.getItem(TOKEN_KEY) ?? '';
$('token').onchange = () => {
  sessionStorage.setItem(TOKEN_KEY, token());
  log('token saved: REST calls use it now, the WebSocket from its next connection');
};
$('connect').onclick = connect;
$('disconnect').onclick = disconnect;
$('create').onclick = createTopic;
$('subscribe').onclick = subscribe;
$('unsubscribe').onclick = unsubscribe;
$('publish').onclick = publish;
$('refresh').onclick = listTopics;
connect();
listTopics();
pollStats();
setInterval(pollStats, STATS_EVERY_MS);
