// Inline SVG icons (24×24, stroked with currentColor), so the component needs no
// icon font or image requests and every icon follows the button's colour.

const svg = (body) =>
  `<svg viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor" ` +
  `stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" ` +
  `focusable="false">${body}</svg>`;

export const icons = {
  mic: svg(
    '<rect x="9" y="2.5" width="6" height="12" rx="3"/>' +
      '<path d="M5 11a7 7 0 0 0 14 0"/><path d="M12 18v3.5"/><path d="M8.5 21.5h7"/>',
  ),
  micOff: svg(
    '<path d="M15 9.4V5.5a3 3 0 0 0-5.7-1.3"/><path d="M9 9v2.5a3 3 0 0 0 5.1 2.1"/>' +
      '<path d="M19 11a7 7 0 0 1-1.1 3.8M16.2 16.9A7 7 0 0 1 5 11"/>' +
      '<path d="M12 18v3.5"/><path d="M8.5 21.5h7"/><path d="M3 3l18 18"/>',
  ),
  camera: svg(
    '<rect x="2.5" y="6" width="13" height="12" rx="2.5"/>' +
      '<path d="M15.5 10.5l5-3v9l-5-3z"/>',
  ),
  cameraOff: svg(
    '<path d="M9 6h4a2.5 2.5 0 0 1 2.5 2.5v3M15.5 15.5a2.5 2.5 0 0 1-2.5 2.5H5' +
      'a2.5 2.5 0 0 1-2.5-2.5v-7A2.5 2.5 0 0 1 4.6 6"/>' +
      '<path d="M15.5 10.5l5-3v9l-3.2-1.9"/><path d="M3 3l18 18"/>',
  ),
  switchCamera: svg(
    '<path d="M4 8.5A2.5 2.5 0 0 1 6.5 6h1.8l1.5-2h4.4l1.5 2h1.8A2.5 2.5 0 0 1 20 8.5v8' +
      'a2.5 2.5 0 0 1-2.5 2.5h-11A2.5 2.5 0 0 1 4 16.5z"/>' +
      '<path d="M9 12.5a3 3 0 0 1 5.2-2"/><path d="M14.5 9v1.8h-1.8"/>' +
      '<path d="M15 12.5a3 3 0 0 1-5.2 2"/><path d="M9.5 16v-1.8h1.8"/>',
  ),
  hangup: svg(
    '<path d="M3.2 13.6c4.9-4.3 12.7-4.3 17.6 0 .6.5.7 1.4.2 2l-1.3 1.6c-.4.5-1.2.7-1.8.4' +
      'l-2.5-1.1c-.5-.2-.8-.7-.8-1.3v-1.5a11 11 0 0 0-5.2 0v1.5c0 .6-.3 1.1-.8 1.3L6.1 17.6' +
      'c-.6.3-1.4.1-1.8-.4L3 15.6c-.5-.6-.4-1.5.2-2z" fill="currentColor" stroke="none"/>',
  ),
  phone: svg(
    '<path d="M6.6 10.8a15.2 15.2 0 0 0 6.6 6.6l2.2-2.2c.3-.3.7-.4 1-.2 1.1.4 2.3.6 3.6.6' +
      '.6 0 1 .4 1 1V20c0 .6-.4 1-1 1A17 17 0 0 1 3 4c0-.6.4-1 1-1h3.5c.6 0 1 .4 1 1 0 1.3.2 2.5' +
      '.6 3.6.1.3 0 .7-.2 1z" fill="currentColor" stroke="none"/>',
  ),
  volume: svg(
    '<path d="M4 9.5h3.5L12 5.5v13l-4.5-4H4z"/><path d="M15.5 9a4 4 0 0 1 0 6"/>' +
      '<path d="M18 6.5a7.5 7.5 0 0 1 0 11"/>',
  ),
  users: svg(
    '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0"/>' +
      '<path d="M16 4.6a3.5 3.5 0 0 1 0 6.8"/><path d="M18.5 14.2A6.5 6.5 0 0 1 21.5 20"/>',
  ),
  chat: svg(
    '<path d="M21 11.5c0 4.1-4 7.5-9 7.5-1.2 0-2.4-.2-3.4-.6L3.5 20l1.4-3.7' +
      'C3.7 15 3 13.3 3 11.5 3 7.4 7 4 12 4s9 3.4 9 7.5z"/>' +
      '<path d="M8.5 11.5h.01M12 11.5h.01M15.5 11.5h.01"/>',
  ),
  send: svg('<path d="M21 3L10.5 13.5"/><path d="M21 3l-6.5 18-4-7.5-7.5-4z"/>'),
  settings: svg(
    '<circle cx="12" cy="12" r="3"/>' +
      '<path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3' +
      ' 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1' +
      'a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1' +
      'a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0' +
      ' 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3' +
      'l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4' +
      'h-.1a1.7 1.7 0 0 0-1.5 1z"/>',
  ),
  share: svg(
    '<rect x="2.5" y="4" width="19" height="13" rx="2"/><path d="M8 21h8M12 17v4"/>' +
      '<path d="M12 13.5V7.5M9.5 10L12 7.5l2.5 2.5"/>',
  ),
  stopShare: svg(
    '<rect x="2.5" y="4" width="19" height="13" rx="2"/><path d="M8 21h8M12 17v4"/>' +
      '<path d="M9.5 8l5 5M14.5 8l-5 5"/>',
  ),
  close: svg('<path d="M6 6l12 12M18 6L6 18"/>'),
  alert: svg(
    '<path d="M12 3.5l9.5 16.5h-19z"/><path d="M12 10v4.5"/><path d="M12 17.2v.3"/>',
  ),
};
