// pneumo web page: upload an X-ray, show the model's estimate, re-label it live
// against a user-chosen threshold, overlay Grad-CAM. Vanilla ES2020, no
// external resources, runs under `script-src 'self'; style-src 'self'`
// (styles change only through the CSSOM, never through style attributes).
'use strict';

const API = {
  model: 'api/v1/model',
  predict: 'api/v1/predict',
};
const LANG_KEY = 'pneumo.lang';
const TOKEN_KEY = 'pneumo.token'; // sessionStorage: this tab only, gone when it closes
const LANGS = ['en', 'pt-BR'];

const STRINGS = {
  en: {
    doc_title: 'pneumo — chest X-ray pneumonia screening',
    skip_to_main: 'Skip to main content',
    tagline: 'Chest X-ray pneumonia screening',
    language: 'Language',
    disclaimer_title: 'Medical disclaimer',
    disclaimer_text: 'Research and screening-assist tool. It is not a diagnostic device. ' +
      'Its output must not be used for clinical decisions without review by a qualified health professional.',
    image_title: 'Chest X-ray',
    drop_title: 'Drop an X-ray image here or choose a file',
    drop_title_again: 'Drop another image or choose a file',
    drop_hint: 'JPEG, PNG or DICOM, frontal (PA/AP) chest radiograph',
    analyzing: 'Analyzing…',
    gradcam_title: 'Heatmap (Grad-CAM)',
    gradcam_show: 'Show heatmap overlay',
    opacity: 'Opacity',
    legend_low: 'low',
    legend_high: 'high influence',
    gradcam_note: 'Warmer colors mark the regions that most influenced the score. It is not a lesion outline.',
    gradcam_missing: 'no heatmap returned',
    preview_alt: 'Uploaded chest X-ray: {name}',
    heatmap_alt: 'Grad-CAM heatmap over the uploaded X-ray',
    caption_heatmap: 'heatmap {opacity}',
    result_title: 'Result',
    result_empty: 'Upload an image to get the model’s estimate.',
    ood_title: 'This does not look like a chest X-ray',
    ood_detail: 'No result is given: the model answers only for frontal chest X-rays like the ones it ' +
      'was trained on. Please upload a chest radiograph (JPEG, PNG or DICOM).',
    probability: 'Probability of pneumonia',
    subtypes: 'Of which bacterial {b}, viral {v} (normal {n})',
    label_PNEUMONIA: 'PNEUMONIA',
    label_NORMAL: 'NORMAL',
    reason_positive: 'Probability {p} is at or above the threshold {t}.',
    reason_negative: 'Probability {p} is below the threshold {t}.',
    warnings_title: 'Warnings',
    latency: 'Inference time',
    latency_value: '{ms} ms',
    model: 'Model',
    model_value: '{id} {version}',
    image_size: 'Image size',
    image_size_value: '{w} × {h} px',
    audit: 'Audit record',
    audit_value: '#{id}',
    threshold: 'Decision threshold',
    threshold_help: 'Pneumonia is flagged when the probability is at or above the threshold. ' +
      'A lower threshold catches more cases (higher sensitivity) at the cost of more false alarms.',
    threshold_reset: 'Reset to the model default ({t})',
    metrics_title: 'Model validation metrics',
    metrics_loading: 'Loading model information…',
    metrics_error: 'Model information is unavailable: {msg}',
    metrics_none: 'This model carries no validation metrics.',
    metrics_caption: 'Measured on a held-out, patient-wise validation split of the training data ' +
      '(n = {n} images), at the model’s default threshold {t}. Validation figures, not a clinical performance claim.',
    model_line: '{id} · version {version} · {arch} · input {size} px',
    metric: 'Metric',
    value: 'Value',
    ci95: '95% CI',
    m_sensitivity: 'Sensitivity',
    m_specificity: 'Specificity',
    m_accuracy: 'Accuracy',
    m_balanced_accuracy: 'Balanced accuracy',
    m_precision: 'Precision (PPV)',
    m_f1: 'F1 score',
    m_roc_auc: 'ROC AUC',
    m_pr_auc: 'PR AUC',
    token_title: 'This server needs an access token',
    token_hint: "Ask the server's operator for it. It is kept for this browser tab only.",
    token_wrong: 'That token was not accepted.',
    token_label: 'Access token',
    token_submit: 'Continue',
    err_title: 'The image could not be analyzed',
    err_400: 'The file could not be read as an X-ray image.',
    err_413: 'The file is too large.',
    err_415: 'This file is not an image. Please choose a JPEG, PNG or DICOM file.',
    err_500: 'The server failed while analyzing the image.',
    err_503: 'The model is not available right now. Please try again shortly.',
    ci_small: 'n too small',
    err_401: 'The access token was not accepted.',
    err_403: 'The server refused this request from this page.',
    err_404: 'The server does not know this address.',
    err_405: 'The server does not accept this kind of request here.',
    w_color: 'Colour image: chest X-rays are grayscale, this may not be an X-ray.',
    w_small: 'Very small image: the prediction may be unreliable.',
    w_aspect: 'Unusual aspect ratio for a chest X-ray.',
    w_nocam: 'The heat map (Grad-CAM) is not available for this model.',
    w_camfail: 'The heat map (Grad-CAM) could not be drawn.',
    w_other: 'The server reported a warning: {msg}',
    err_network: 'Could not reach the server.',
    err_other: 'Unexpected server response (HTTP {status}).',
    err_detail: 'Details: {msg}',
    footer_privacy: 'The image is analyzed by this server and is not sent to third parties.',
  },
  'pt-BR': {
    doc_title: 'pneumo — triagem de pneumonia em radiografia de tórax',
    skip_to_main: 'Ir para o conteúdo principal',
    tagline: 'Triagem de pneumonia em radiografia de tórax',
    language: 'Idioma',
    disclaimer_title: 'Aviso médico',
    disclaimer_text: 'Ferramenta de pesquisa e de apoio à triagem. Não é um dispositivo de diagnóstico. ' +
      'Seus resultados não devem ser usados em decisões clínicas sem a avaliação de um profissional de saúde qualificado.',
    image_title: 'Radiografia de tórax',
    drop_title: 'Arraste uma radiografia para cá ou escolha um arquivo',
    drop_title_again: 'Arraste outra imagem ou escolha um arquivo',
    drop_hint: 'JPEG, PNG ou DICOM, radiografia de tórax em incidência frontal (PA/AP)',
    analyzing: 'Analisando…',
    gradcam_title: 'Mapa de calor (Grad-CAM)',
    gradcam_show: 'Mostrar mapa de calor sobreposto',
    opacity: 'Opacidade',
    legend_low: 'baixa',
    legend_high: 'alta influência',
    gradcam_note: 'Cores mais quentes indicam as regiões que mais influenciaram o resultado. Não é um contorno de lesão.',
    gradcam_missing: 'sem mapa de calor',
    preview_alt: 'Radiografia de tórax enviada: {name}',
    heatmap_alt: 'Mapa de calor Grad-CAM sobre a radiografia enviada',
    caption_heatmap: 'mapa de calor {opacity}',
    result_title: 'Resultado',
    result_empty: 'Envie uma imagem para obter a estimativa do modelo.',
    ood_title: 'Esta imagem não parece uma radiografia de tórax',
    ood_detail: 'Nenhum resultado é dado: o modelo só responde para radiografias de tórax frontais como as ' +
      'do seu treinamento. Envie uma radiografia de tórax (JPEG, PNG ou DICOM).',
    probability: 'Probabilidade de pneumonia',
    subtypes: 'Dos quais bacteriana {b}, viral {v} (normal {n})',
    label_PNEUMONIA: 'Pneumonia',
    label_NORMAL: 'Normal',
    reason_positive: 'A probabilidade {p} é igual ou superior ao limiar {t}.',
    reason_negative: 'A probabilidade {p} é inferior ao limiar {t}.',
    warnings_title: 'Avisos',
    latency: 'Tempo de inferência',
    latency_value: '{ms} ms',
    model: 'Modelo',
    model_value: '{id} {version}',
    image_size: 'Tamanho da imagem',
    image_size_value: '{w} × {h} px',
    audit: 'Registro de auditoria',
    audit_value: 'nº {id}',
    threshold: 'Limiar de decisão',
    threshold_help: 'A pneumonia é sinalizada quando a probabilidade é igual ou superior ao limiar. ' +
      'Um limiar menor detecta mais casos (maior sensibilidade), com mais falsos positivos.',
    threshold_reset: 'Restaurar o padrão do modelo ({t})',
    metrics_title: 'Métricas de validação do modelo',
    metrics_loading: 'Carregando informações do modelo…',
    metrics_error: 'Informações do modelo indisponíveis: {msg}',
    metrics_none: 'Este modelo não contém métricas de validação.',
    metrics_caption: 'Medidas em um conjunto de validação separado dos dados de treino, dividido por paciente ' +
      '(n = {n} imagens), no limiar padrão do modelo {t}. São valores de validação, não uma garantia de desempenho clínico.',
    model_line: '{id} · versão {version} · {arch} · entrada {size} px',
    metric: 'Métrica',
    value: 'Valor',
    ci95: 'IC 95%',
    m_sensitivity: 'Sensibilidade',
    m_specificity: 'Especificidade',
    m_accuracy: 'Acurácia',
    m_balanced_accuracy: 'Acurácia balanceada',
    m_precision: 'Precisão (VPP)',
    m_f1: 'Pontuação F1',
    m_roc_auc: 'AUC ROC',
    m_pr_auc: 'AUC PR',
    token_title: 'Este servidor exige um token de acesso',
    token_hint: 'Peça-o ao responsável pelo servidor. Ele fica guardado só nesta aba do navegador.',
    token_wrong: 'Esse token não foi aceito.',
    token_label: 'Token de acesso',
    token_submit: 'Continuar',
    err_title: 'Não foi possível analisar a imagem',
    err_400: 'O arquivo não pôde ser lido como uma imagem de radiografia.',
    err_413: 'O arquivo é grande demais.',
    err_415: 'Este arquivo não é uma imagem. Escolha um arquivo JPEG, PNG ou DICOM.',
    err_500: 'O servidor falhou ao analisar a imagem.',
    err_503: 'O modelo não está disponível no momento. Tente novamente em instantes.',
    ci_small: 'n pequeno demais',
    err_401: 'O token de acesso não foi aceito.',
    err_403: 'O servidor recusou este pedido vindo desta página.',
    err_404: 'O servidor não conhece este endereço.',
    err_405: 'O servidor não aceita este tipo de pedido aqui.',
    w_color: 'Imagem colorida: radiografias de tórax são em tons de cinza; talvez não seja uma radiografia.',
    w_small: 'Imagem muito pequena: a previsão pode não ser confiável.',
    w_aspect: 'Proporção incomum para uma radiografia de tórax.',
    w_nocam: 'O mapa de calor (Grad-CAM) não está disponível para este modelo.',
    w_camfail: 'Não foi possível desenhar o mapa de calor (Grad-CAM).',
    w_other: 'O servidor emitiu um aviso.',
    err_network: 'Não foi possível conectar ao servidor.',
    err_other: 'Resposta inesperada do servidor (HTTP {status}).',
    err_detail: 'Detalhes: {msg}',
    footer_privacy: 'A imagem é analisada por este servidor e não é enviada a terceiros.',
  },
};

// Ratios are shown as percentages; areas under curves as plain decimals.
const METRICS = [
  ['sensitivity', 'percent'],
  ['specificity', 'percent'],
  ['accuracy', 'percent'],
  ['balanced_accuracy', 'percent'],
  ['precision', 'percent'],
  ['f1', 'decimal'],
  ['roc_auc', 'decimal'],
  ['pr_auc', 'decimal'],
];

const state = {
  lang: 'en',
  model: null,          // GET /api/v1/model response
  modelError: null,     // string
  threshold: 0.5,       // exact value (the model's may not sit on the slider's 0.01 grid)
  thresholdTouched: false,
  fileName: '',
  previewUrl: null,
  busy: false,
  result: null,         // POST /api/v1/predict response
  error: null,          // {status, message}
  requestSeq: 0,
};

const $ = (id) => document.getElementById(id);

// ---------- text ----------

function t(key, vars = {}) {
  const table = STRINGS[state.lang] || STRINGS.en;
  const template = key in table ? table[key] : STRINGS.en[key];
  return template.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ''));
}

function formatNumber(x, digits) {
  return new Intl.NumberFormat(state.lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
}

function formatPercent(x, digits = 1) {
  return new Intl.NumberFormat(state.lang, {
    style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(x);
}

// Truncated, not rounded, so the shown probability never contradicts the label:
// with a 0.01-step threshold, floor(p, 3) >= t exactly when p >= t.
function formatProbability(p) {
  return formatNumber(Math.floor(p * 1000 + 1e-9) / 1000, 3);
}

// Two decimals for slider values; more only when the model's stored threshold needs them.
function formatThreshold(x) {
  const digits = Math.abs(x * 100 - Math.round(x * 100)) < 1e-9 ? 2 : 4;
  return formatNumber(x, digits);
}

function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || '').toLowerCase().startsWith('pt') ? 'pt-BR' : 'en';
}

function applyStaticStrings() {
  document.documentElement.lang = state.lang;
  document.title = t('doc_title');
  for (const el of document.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll('[data-num]')) {
    el.textContent = new Intl.NumberFormat(state.lang).format(Number(el.dataset.num));
  }
  for (const btn of document.querySelectorAll('.lang-btn')) {
    btn.setAttribute('aria-pressed', String(btn.dataset.lang === state.lang));
  }
}

function setLanguage(lang) {
  state.lang = lang;
  localStorage.setItem(LANG_KEY, lang);
  renderAll();
}

// ---------- rendering ----------

function renderAll() {
  applyStaticStrings();
  renderDropZone();
  renderViewer();
  renderThreshold();
  renderResult();
  renderError();
  renderMetrics();
}

function renderDropZone() {
  const title = $('drop-zone').querySelector('.drop-title');
  title.textContent = t(state.fileName ? 'drop_title_again' : 'drop_title');
  $('drop-zone').classList.toggle('compact', Boolean(state.fileName));
}

function heatmapSource(result) {
  if (!result) return null;
  if (result.gradcam_heatmap_png) return 'data:image/png;base64,' + result.gradcam_heatmap_png;
  if (result.gradcam_png) return 'data:image/png;base64,' + result.gradcam_png;
  return null;
}

function renderViewer() {
  const viewer = $('viewer');
  viewer.hidden = !state.previewUrl;
  $('busy').hidden = !state.busy;
  $('preview').alt = state.fileName ? t('preview_alt', { name: state.fileName }) : '';

  const heatmap = $('heatmap');
  const source = heatmapSource(state.result);
  const show = $('gradcam-toggle').checked;
  const opacity = Number($('opacity').value);
  if (source && heatmap.dataset.src !== source) {
    heatmap.src = source;
    heatmap.dataset.src = source;
  }
  heatmap.alt = t('heatmap_alt');
  heatmap.hidden = !(source && show);
  heatmap.style.opacity = String(opacity);
  viewer.classList.toggle('with-heatmap', Boolean(source && show));

  $('gradcam-controls').hidden = !source;
  $('opacity').disabled = !show;
  $('opacity-value').textContent = formatPercent(opacity, 0);
  renderCaption();
}

// The caption repeats the decision next to the image: on a phone the result card
// is a scroll away.
function renderCaption() {
  const parts = [state.fileName];
  const result = state.result;
  if (result && isRefused(result)) {
    parts.push(t('ood_title'));
  } else if (result) {
    const label = result.probability >= state.threshold ? 'PNEUMONIA' : 'NORMAL';
    parts.push(t('label_' + label) + ' ' + formatProbability(result.probability));
    if (!heatmapSource(result)) parts.push(t('gradcam_missing'));
    else if ($('gradcam-toggle').checked) parts.push(t('caption_heatmap', { opacity: formatPercent(Number($('opacity').value), 0) }));
  }
  $('viewer-caption').textContent = parts.join(' · ');
}

function renderThreshold() {
  $('threshold-value').textContent = formatThreshold(state.threshold);
  const reset = $('threshold-reset');
  const stored = state.model && typeof state.model.threshold === 'number' ? state.model.threshold : null;
  reset.hidden = stored === null || Math.abs(stored - state.threshold) < 1e-9;
  if (stored !== null) reset.textContent = t('threshold_reset', { t: formatThreshold(stored) });
}

// The server's out-of-distribution gate refused the image: no probability to show.
function isRefused(result) {
  return result.out_of_distribution === true && typeof result.probability !== 'number';
}

function renderResult() {
  const result = state.result;
  const refused = Boolean(result && isRefused(result));
  $('result').hidden = !result || refused;
  $('ood').hidden = !refused;
  $('result-empty').hidden = Boolean(result || state.error || state.busy);
  if (refused) renderCaption();
  if (!result || refused) return;

  const p = result.probability;
  const positive = p >= state.threshold;
  const label = positive ? 'PNEUMONIA' : 'NORMAL';
  const labelEl = $('decision-label');
  labelEl.textContent = t('label_' + label);
  labelEl.dataset.class = label;
  $('decision-reason').textContent = t(positive ? 'reason_positive' : 'reason_negative', {
    p: formatProbability(p), t: formatThreshold(state.threshold),
  });
  $('result').classList.toggle('positive', positive);
  renderCaption();
  // Screen readers hear a new result or a flipped label, not every threshold step.
  const announcement = t('label_' + label) + '. ' + t('probability') + ': ' + formatProbability(p) + '.';
  if ($('announce').textContent !== announcement) $('announce').textContent = announcement;

  $('prob-value').textContent = formatProbability(p);
  const bar = $('prob-bar');
  bar.setAttribute('aria-valuenow', String(Math.round(p * 100)));
  bar.setAttribute('aria-valuetext', formatProbability(p));
  $('bar-fill').style.width = (p * 100).toFixed(2) + '%';
  $('bar-marker').style.left = (state.threshold * 100).toFixed(2) + '%';
  // Three-class models: the pneumonia probability split into bacterial and viral.
  const c = result.classes;
  $('subtypes').hidden = !c;
  $('subtypes').textContent = c ? t('subtypes', {
    b: formatProbability(c.BACTERIAL), v: formatProbability(c.VIRAL), n: formatProbability(c.NORMAL),
  }) : '';

  renderWarnings(result.warnings);
  $('latency').textContent = typeof result.latency_ms === 'number'
    ? t('latency_value', { ms: formatNumber(result.latency_ms, result.latency_ms < 100 ? 1 : 0) }) : '—';
  const model = result.model || {};
  $('result-model').textContent = model.id ? t('model_value', { id: model.id, version: model.version || '' }).trim() : '—';
  const image = result.image || {};
  $('image-size').textContent = image.width && image.height
    ? t('image_size_value', { w: image.width, h: image.height }) : '—';
  const audit = result.audit || {};
  $('audit-row').hidden = !(audit.logged && audit.id !== undefined && audit.id !== null);
  $('audit').textContent = t('audit_value', { id: audit.id });
}

// Server warnings are English; each known one has its text in every language.
const WARNINGS = [
  ['colour image', 'w_color'],
  ['very small image', 'w_small'],
  ['unusual aspect ratio', 'w_aspect'],
  ['Grad-CAM is not available', 'w_nocam'],
  ['Grad-CAM overlay failed', 'w_camfail'],
];

function warningText(text) {
  const known = WARNINGS.find(([prefix]) => text.startsWith(prefix));
  return known ? t(known[1]) : t('w_other', { msg: text });
}

function renderWarnings(warnings) {
  const list = $('warnings');
  list.replaceChildren();
  const items = Array.isArray(warnings) ? warnings.filter((w) => typeof w === 'string' && w) : [];
  list.hidden = items.length === 0;
  if (!items.length) return;
  const title = document.createElement('li');
  title.className = 'warnings-title';
  title.textContent = t('warnings_title');
  list.append(title);
  for (const text of items) {
    const li = document.createElement('li');
    li.textContent = warningText(text);
    li.dataset.testid = 'warning';
    list.append(li);
  }
}

function renderError() {
  const error = state.error;
  $('error').hidden = !error;
  if (!error) return;
  const known = [400, 401, 403, 404, 405, 413, 415, 500, 503];
  let message;
  if (error.status === 0) message = t('err_network');
  else if (known.includes(error.status)) message = t('err_' + error.status);
  else message = t('err_other', { status: error.status });
  $('error-title').textContent = t('err_title') + '. ' + message;
  // The server's own wording is English: shown as a detail in English only.
  $('error-detail').textContent = error.message && state.lang === 'en' ? t('err_detail', { msg: error.message }) : '';
}

// 95% Wilson score interval of k successes in n trials.
function wilson(k, n) {
  const z = 1.959963984540054;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const center = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, center - half), Math.min(1, center + half)];
}

// Models trained before pneumo replaced zero-width bootstrap intervals carry
// them in their card ("100.0% – 100.0%"): the same rule here, from the
// card's confusion counts (Wilson for proportions, else "n too small").
function honestInterval(name, ci, metrics) {
  if (!Array.isArray(ci) || ci.length !== 2 || typeof ci[0] !== 'number' || ci[1] - ci[0] > 1e-12) return ci;
  const c = metrics.confusion || {};
  const trials = {
    sensitivity: [c.tp, c.tp + c.fn], specificity: [c.tn, c.tn + c.fp],
    precision: [c.tp, c.tp + c.fp], accuracy: [c.tp + c.tn, c.tp + c.tn + c.fp + c.fn],
  }[name];
  return trials && trials[1] > 0 && Number.isFinite(trials[1]) ? wilson(trials[0], trials[1]) : [null, null];
}

function metricCells(name, kind, value, ci) {
  const format = kind === 'percent' ? (x) => formatPercent(x, 1) : (x) => formatNumber(x, 3);
  const row = document.createElement('tr');
  row.dataset.testid = 'metric-' + name;
  const th = document.createElement('th');
  th.scope = 'row';
  th.textContent = t('m_' + name);
  const td = document.createElement('td');
  td.className = 'num';
  td.textContent = format(value);
  const tdCi = document.createElement('td');
  tdCi.className = 'num ci';
  const known = Array.isArray(ci) && ci.length === 2;
  // null bounds: the sample was too small for an interval (see pn_metrics_bootstrap).
  tdCi.textContent = !known ? '—'
    : typeof ci[0] === 'number' && typeof ci[1] === 'number' ? format(ci[0]) + ' – ' + format(ci[1])
      : t('ci_small');
  row.append(th, td, tdCi);
  return row;
}

function renderMetrics() {
  const status = $('metrics-status');
  const body = $('metrics-body');
  const model = state.model;
  if (!model) {
    body.hidden = true;
    status.hidden = false;
    status.textContent = state.modelError ? t('metrics_error', { msg: state.modelError }) : t('metrics_loading');
    return;
  }
  $('model-line').textContent = t('model_line', {
    id: model.id || '—', version: model.version || '—', arch: model.arch || '—', size: model.input_size || '—',
  });
  const metrics = model.metrics || {};
  const ci = metrics.ci95 || {};
  const rows = METRICS.filter(([name]) => typeof metrics[name] === 'number')
    .map(([name, kind]) => metricCells(name, kind, metrics[name], honestInterval(name, ci[name], metrics)));
  $('metrics-rows').replaceChildren(...rows);
  body.hidden = false;
  status.hidden = rows.length > 0;
  status.textContent = t('metrics_none');
  const caption = $('metrics-caption');
  caption.textContent = t('metrics_caption', {
    n: typeof metrics.n === 'number' ? formatNumber(metrics.n, 0) : '—',
    t: typeof model.threshold === 'number' ? formatThreshold(model.threshold) : '—',
  });
  if (metrics.split) caption.title = metrics.split;
}

// ---------- data ----------

// Asks for the API token in the page's form; resolves with what was typed.
function askToken(wrong) {
  const form = $('token-form');
  $('token-wrong').hidden = !wrong;
  form.hidden = false;
  $('token-input').focus();
  return new Promise((resolve) => {
    form.onsubmit = (e) => {
      e.preventDefault();
      const token = $('token-input').value.trim();
      if (!token) return;
      form.hidden = true;
      $('token-input').value = '';
      resolve(token);
    };
  });
}

// fetch with the tab's API token; on 401 asks for a token and tries again.
// Concurrent callers share one question.
let pendingToken = null;
async function apiFetch(url, options = {}) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = 'Bearer ' + token;
    const response = await fetch(url, Object.assign({}, options, { headers }));
    if (response.status !== 401) return response;
    if (!pendingToken) {
      pendingToken = askToken(Boolean(token)).then((typed) => {
        sessionStorage.setItem(TOKEN_KEY, typed);
        pendingToken = null;
      });
    }
    await pendingToken;
  }
}

async function readError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return String(body.error.message);
  } catch (_) { /* not JSON: the status alone tells the story */ }
  return '';
}

async function loadModel() {
  try {
    const response = await apiFetch(API.model, { headers: { Accept: 'application/json' } });
    if (!response.ok) {
      state.modelError = (await readError(response)) || 'HTTP ' + response.status;
    } else {
      state.model = await response.json();
      if (typeof state.model.threshold === 'number' && !state.thresholdTouched) {
        setThreshold(state.model.threshold);
      }
    }
  } catch (e) {
    state.modelError = t('err_network');
  }
  renderMetrics();
  renderThreshold();
}

function setThreshold(value) {
  state.threshold = Math.min(1, Math.max(0, value));
  $('threshold').value = String(state.threshold);
}

function showPreview(file) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
  const url = URL.createObjectURL(file);
  const img = $('preview');
  // Only reveal the viewer once the browser could decode the file; the server
  // reports why a non-image was refused.
  img.onload = () => { if (img.src === url) { state.previewUrl = url; renderViewer(); } };
  img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
}

async function analyze(file) {
  const seq = ++state.requestSeq;
  state.fileName = file.name || 'image';
  state.result = null;
  state.error = null;
  state.busy = true;
  showPreview(file);
  renderAll();

  const query = new URLSearchParams({ threshold: String(state.threshold), gradcam: '1' });
  let result = null;
  let error = null;
  try {
    const response = await apiFetch(API.predict + '?' + query, {
      method: 'POST',
      headers: { 'Content-Type': file.type || 'application/octet-stream', Accept: 'application/json' },
      body: file,
    });
    if (response.ok) result = await response.json();
    else error = { status: response.status, message: await readError(response) };
    if (result && typeof result.probability !== 'number' && result.out_of_distribution !== true) {
      result = null;
      error = { status: response.status, message: 'missing "probability"' };
    }
  } catch (e) {
    error = { status: 0, message: '' };
  }
  if (seq !== state.requestSeq) return; // a newer upload superseded this one
  state.busy = false;
  state.result = result;
  state.error = error;
  renderAll();
  revealVerdict();
}

// On a phone the verdict card sits below the image: bring it into view, with
// as little scrolling as needed (nothing moves when it is already visible).
function revealVerdict() {
  const card = $(state.result ? 'result' : 'error');
  if (!card || card.hidden) return;
  const box = card.getBoundingClientRect();
  if (box.top >= 0 && box.bottom <= window.innerHeight) return;
  card.scrollIntoView({ block: box.height > window.innerHeight ? 'start' : 'nearest' });
}

// ---------- events ----------

function handleFiles(files) {
  if (files && files.length) analyze(files[0]);
}

function wireUpload() {
  const input = $('file-input');
  const zone = $('drop-zone');
  zone.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    handleFiles(input.files);
    input.value = ''; // choosing the same file again still triggers a new analysis
  });

  const target = document.querySelector('.image-card');
  let depth = 0; // dragenter/dragleave fire for every child crossed
  target.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; zone.classList.add('dragging'); });
  target.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; zone.classList.remove('dragging'); } });
  target.addEventListener('dragover', (e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; });
  target.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    handleFiles(e.dataTransfer.files);
  });
  // A file dropped beside the target must not make the browser navigate away.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
}

function wireControls() {
  $('threshold').addEventListener('input', (e) => {
    state.thresholdTouched = true;
    state.threshold = Number(e.target.value);
    renderThreshold();
    renderResult();
  });
  $('threshold-reset').addEventListener('click', () => {
    setThreshold(state.model.threshold);
    renderThreshold();
    renderResult();
    $('threshold').focus();
  });
  $('gradcam-toggle').addEventListener('change', renderViewer);
  $('opacity').addEventListener('input', renderViewer);
  for (const btn of document.querySelectorAll('.lang-btn')) {
    btn.addEventListener('click', () => setLanguage(btn.dataset.lang));
  }
}

function init() {
  state.lang = pickLanguage();
  setThreshold(state.threshold);
  wireUpload();
  wireControls();
  renderAll();
  loadModel();
}

init();
