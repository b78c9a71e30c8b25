// The connection page of `oauth2-host ui`. Every request carries the launch token from the
// page's address; secret values are sent once, to the store, and never read back.
'use strict';

const token = new URLSearchParams(location.search).get('token') || '';
const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => Array.from(document.querySelectorAll(selector));
const FIELDS = ['grant_type', 'token_url', 'authorization_url', 'redirect_uri', 'issuer',
  'device_authorization_url', 'revocation_url', 'client_id', 'client_secret', 'client_auth',
  'private_key', 'signing_alg', 'key_id', 'assertion_audience', 'subject', 'username', 'password',
  'header_prefix', 'audience', 'scope'];
// The name a secret gets when the user stores one without naming it.
const SECRET_SUFFIX = { client_secret: 'secret', password: 'password', private_key: 'key' };
let presets = [];

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'X-Launch-Token': token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (_) { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function grant() { return $('#grant_type').value; }

// Fields that only some grants use are shown only for them; hidden ones are not sent.
function showGrantFields() {
  for (const element of $$('[data-grants]')) {
    element.hidden = !element.dataset.grants.split(' ').includes(grant());
  }
}

function visible(element) { return !element.closest('[hidden]'); }

function connection() {
  const config = {};
  for (const name of FIELDS) {
    const element = document.getElementById(name);
    const value = element.value.trim();
    if (value && visible(element)) config[name] = value;
  }
  const preset = $('#preset').value;
  if (preset) {
    config.preset = preset;
    const values = {};
    for (const input of $$('#preset-values input')) {
      if (input.value.trim()) values[input.name] = input.value.trim();
    }
    if (Object.keys(values).length) config.preset_values = values;
  }
  return config;
}

function clearErrors() {
  for (const element of $$('.error')) element.textContent = '';
  for (const element of $$('.invalid')) element.classList.remove('invalid');
}

// Each problem next to the field it concerns; one without a field goes under the buttons.
function showProblems(problems) {
  clearErrors();
  const general = [];
  for (const { key, message } of problems) {
    const slot = $(`.error[data-for="${CSS.escape(key)}"]`);
    const input = document.getElementById(key);
    if (slot && visible(slot)) {
      slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
      if (input) input.classList.add('invalid');
    } else {
      general.push(`${key}: ${message}`);
    }
  }
  return general;
}

async function check() {
  const { problems } = await api('/api/check', { config: connection() });
  const general = showProblems(problems);
  $('#test-status').textContent = problems.length
    ? `${problems.length} problem(s) to fix${general.length ? `: ${general.join('; ')}` : ''}`
    : 'The settings look right. Test the connection to try them.';
  return problems.length === 0;
}

async function storeSecret(field) {
  const name = $(`#${field}`);
  const value = $(`#${field}_value`);
  const status = $(`[data-stored="${field}"]`);
  if (!name.value.trim()) {
    const id = $('#client_id').value.trim() || 'connection';
    name.value = `${id}-${SECRET_SUFFIX[field]}`;
  }
  if (!value.value) { status.textContent = 'Type the value first.'; return; }
  try {
    const { stored } = await api('/api/secret', { name: name.value.trim(), value: value.value });
    status.textContent = `Stored as "${stored}".`;
  } catch (error) {
    status.textContent = `Not stored: ${error.message}`;
  } finally {
    value.value = '';
  }
}

function renderSteps(steps) {
  const list = $('#checklist');
  list.replaceChildren(...steps.map((step) => {
    const item = document.createElement('li');
    item.className = step.passed ? 'pass' : 'fail';
    const name = document.createElement('strong');
    name.textContent = step.step;
    const detail = document.createElement('span');
    detail.className = 'detail';
    detail.textContent = step.detail;
    item.append(name, detail);
    return item;
  }));
}

async function test() {
  const button = $('#test');
  const status = $('#test-status');
  button.disabled = true;
  clearErrors();
  renderSteps([]);
  status.textContent = 'Testing...';
  try {
    const { run } = await api('/api/validate', {
      config: connection(), api: $('#api').value.trim(), expect_status: $('#expect_status').value.trim(),
    });
    let opened = null;
    for (;;) {
      const state = await api(`/api/run/${run}`);
      renderSteps(state.steps);
      if (state.consent_url && opened !== state.consent_url) {
        opened = state.consent_url;
        window.open(state.consent_url, '_blank', 'noopener');
      }
      if (state.done) {
        status.textContent = state.passed ? 'Every step passed.' : 'The test failed: see the step marked ✘.';
        status.dataset.result = state.passed ? 'passed' : 'failed';
        break;
      }
      status.textContent = state.consent_url
        ? 'Waiting for your consent in the new tab...'
        : `Testing... (${state.steps.length} step(s) done)`;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  } catch (error) {
    status.textContent = `The test could not run: ${error.message}`;
    status.dataset.result = 'failed';
  } finally {
    button.disabled = false;
  }
}

async function save() {
  const status = $('#save-status');
  try {
    const { saved } = await api('/api/save', {
      config: connection(), file: $('#file').value.trim(), overwrite: $('#overwrite').checked,
    });
    status.textContent = `Saved to ${saved}.`;
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
}

function choosePreset() {
  const preset = presets.find((p) => p.name === $('#preset').value);
  const box = $('#preset-values');
  box.replaceChildren();
  $('#preset-notes').textContent = preset ? preset.notes : '';
  for (const element of ['token_url', 'authorization_url']) {
    document.getElementById(element).placeholder = preset
      ? `from the preset (${preset.title})` : '';
  }
  if (!preset) return;
  for (const placeholder of preset.placeholders) {
    const label = document.createElement('label');
    label.textContent = `${placeholder.name}: ${placeholder.description}`;
    const input = document.createElement('input');
    input.type = 'text';
    input.name = placeholder.name;
    input.placeholder = placeholder.default || placeholder.example;
    label.htmlFor = input.id = `preset-${placeholder.name}`;
    box.append(label, input);
  }
  if (preset.grants.length && !preset.grants.includes(grant())) {
    $('#grant_type').value = preset.grants[0];
    showGrantFields();
  }
}

async function start() {
  showGrantFields();
  $('#grant_type').addEventListener('change', showGrantFields);
  $('#preset').addEventListener('change', choosePreset);
  $('#check').addEventListener('click', () => check().catch((e) => { $('#test-status').textContent = e.message; }));
  $('#test').addEventListener('click', test);
  $('#save').addEventListener('click', save);
  for (const button of $$('[data-store]')) {
    button.addEventListener('click', () => storeSecret(button.dataset.store));
  }
  try {
    presets = await api('/api/presets');
    for (const preset of presets) {
      const option = document.createElement('option');
      option.value = preset.name;
      option.textContent = preset.title;
      $('#preset').append(option);
    }
  } catch (error) {
    $('#test-status').textContent = `The page cannot reach oauth2-host: ${error.message}`;
  }
}

start();
