/* Marketo gateway browser library: a Segment-like API over Munchkin, Forms 2.0 and beacons. */
(function (window, document, config) {
  'use strict';

  var VERSION = '0.1.0';
  var stub = window.gateway;
  var navigator = window.navigator;
  var location = window.location;

  function noop() {}

  function warn(message) {
    try {
      window.console.warn('gateway: ' + message);
    } catch (e) {
      noop();
    }
  }

  // Keep every error away from the host page: a tracker must never break a site.
  function safe(fn) {
    return function () {
      try {
        return fn.apply(null, arguments);
      } catch (e) {
        warn(e && e.message);
      }
    };
  }

  // Step aside when the library already runs on this page (the loader was included twice).
  if (stub && stub.VERSION) {
    warn('loaded twice; keeping the first copy');
    return;
  }

  var munchkinOptions = config.munchkinOptions || {};
  // Munchkin.init records the first page view itself unless apiOnly is set.
  var skipVisit = !munchkinOptions.apiOnly;
  // Munchkin calls waiting for init; null once Munchkin runs, false when it is absent or blocked.
  var munchkinQueue = config.munchkinId && config.munchkinScriptUrl ? [] : false;
  // Work (beacons, form posts) held until Munchkin has set its cookie, to tie it to the lead.
  var held = munchkinQueue ? [] : null;
  // Form submissions waiting for Forms 2.0; null once the form is ready, false when blocked.
  var formQueue;
  var form;

  function cookie(name) {
    var match = document.cookie.match('(?:^|; )' + name + '=([^;]*)');
    try {
      return match ? decodeURIComponent(match[1]) : '';
    } catch (e) {
      return match[1];
    }
  }

  function load(name) {
    var value;
    try {
      value = window.localStorage.getItem(name);
    } catch (e) {
      noop();
    }
    return value || cookie(name);
  }

  // Persist first-party ids in localStorage with a cookie fallback (private modes, old browsers).
  function save(name, value) {
    try {
      window.localStorage.setItem(name, value);
    } catch (e) {
      noop();
    }
    document.cookie =
      name + '=' + encodeURIComponent(value) + '; path=/; max-age=31536000; SameSite=Lax';
  }

  function uuid() {
    var crypto = window.crypto;
    if (crypto && crypto.randomUUID) {
      return crypto.randomUUID();
    }
    return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === 'x' ? r : (r & 3) | 8).toString(16);
    });
  }

  var anonymousId = load('gw_aid') || uuid();
  var userId = load('gw_uid') || null;
  save('gw_aid', anonymousId);

  function loadScript(src, done) {
    var script = document.createElement('script');
    script.async = true;
    script.src = src;
    script.onload = function () {
      safe(done)(true);
    };
    script.onerror = function () {
      safe(done)(false);
    };
    (document.head || document.documentElement).appendChild(script);
  }

  // Beacons: text/plain avoids a CORS preflight; sendBeacon and keepalive outlive navigation.
  function transmit(message) {
    var mkto = cookie('_mkto_trk');
    var url = config.url + '/v1/' + message.type.charAt(0);
    var body;
    if (mkto) {
      message.context.Marketo = { marketoCookie: mkto };
    }
    body = JSON.stringify(message);
    try {
      if (navigator.sendBeacon(url, body)) {
        return;
      }
    } catch (e) {
      noop();
    }
    window
      .fetch(url, {
        method: 'POST',
        body: body,
        keepalive: true,
        credentials: 'omit',
        headers: { 'Content-Type': 'text/plain' }
      })
      ['catch'](noop);
  }

  function flush() {
    var list = held || [];
    held = null;
    for (var i = 0; i < list.length; i++) {
      safe(list[i])();
    }
  }

  // Run work that needs the _mkto_trk cookie once Munchkin has settled.
  function later(fn) {
    if (held) {
      held.push(fn);
    } else {
      fn();
    }
  }

  function send(type, message) {
    message.type = type;
    message.messageId = uuid();
    message.timestamp = new Date().toISOString();
    message.anonymousId = anonymousId;
    message.writeKey = config.writeKey;
    if (userId) {
      message.userId = userId;
    }
    message.context = {
      page: {
        path: location.pathname,
        referrer: document.referrer,
        search: location.search,
        title: document.title,
        url: location.href
      },
      userAgent: navigator.userAgent,
      library: { name: 'marketo-gateway', version: VERSION }
    };
    later(function () {
      transmit(message);
    });
  }

  function munchkin(name, data, hash) {
    if (munchkinQueue) {
      munchkinQueue.push([name, data, hash]);
    } else if (munchkinQueue === null) {
      window.Munchkin.munchkinFunction(name, data, hash);
    }
  }

  // Release held beacons once the _mkto_trk cookie exists, or after a short wait without it.
  function flushWhenCookie(tries) {
    if (cookie('_mkto_trk') || !tries) {
      flush();
    } else {
      setTimeout(function () {
        flushWhenCookie(tries - 1);
      }, 100);
    }
  }

  function startMunchkin() {
    loadScript(config.munchkinScriptUrl, function (loaded) {
      var queue = munchkinQueue;
      var options = { asyncOnly: true };
      munchkinQueue = false;
      if (loaded) {
        for (var name in munchkinOptions) {
          options[name] = munchkinOptions[name];
        }
        try {
          window.Munchkin.init(config.munchkinId, options);
          munchkinQueue = null;
        } catch (e) {
          warn('Munchkin failed: ' + e.message);
        }
      }
      flushWhenCookie(munchkinQueue === null ? 20 : 0);
      for (var i = 0; i < queue.length; i++) {
        safe(munchkin).apply(null, queue[i]);
      }
    });
    // A script that neither loads nor fails must not hold beacons for ever.
    setTimeout(flush, 5000);
    window.addEventListener('pagehide', flush);
  }

  function startForm() {
    var element = document.createElement('form');
    var base = config.formBaseUrl;
    formQueue = [];
    element.id = 'mktoForm_' + config.formId;
    element.style.display = 'none';
    (document.body || document.documentElement).appendChild(element);
    function start(loaded) {
      var forms = window.MktoForms2;
      if (!loaded || !forms) {
        formQueue = false;
        return warn('Forms 2.0 is unavailable');
      }
      forms.loadForm(base, config.munchkinId, config.formId);
      forms.whenReady(
        safe(function (ready) {
          // Only our hidden form: other forms on the page must never be submitted by us.
          if (form || String(ready.getId()) !== String(config.formId)) {
            return;
          }
          var queue = formQueue;
          form = ready;
          formQueue = null;
          form.onSuccess(function () {
            return false;
          });
          for (var i = 0; i < queue.length; i++) {
            submitForm(queue[i]);
          }
        })
      );
    }
    // Reuse Forms 2.0 when the site already loads it for its own forms.
    if (window.MktoForms2) {
      start(true);
    } else {
      loadScript(base + '/js/forms2/js/forms2.min.js', start);
    }
  }

  function submitForm(fields) {
    if (formQueue === undefined) {
      startForm();
    }
    if (formQueue) {
      formQueue.push(fields);
    } else if (formQueue === null) {
      later(function () {
        fields._mkt_trk = cookie('_mkto_trk');
        form.addHiddenFields(fields);
        form.submit();
      });
    }
  }

  function dig(value, path) {
    var parts = path.split('.');
    for (var i = 0; i < parts.length && value != null; i++) {
      value = value[parts[i]];
    }
    return value;
  }

  // Traits to Marketo SOAP field names through the served map (first non-empty value wins).
  function soapFields(traits, id) {
    var map = config.fieldMap || {};
    var fields = {};
    var name = /^\s*(\S+)\s*(.*)$/.exec(traits.name || '');
    var path, value;
    for (path in map) {
      value = dig(traits, path);
      if (value != null && value !== '' && typeof value !== 'object' && fields[map[path]] == null) {
        fields[map[path]] = value;
      }
    }
    if (name) {
      fields.FirstName = fields.FirstName || name[1];
      if (name[2] && !fields.LastName) {
        fields.LastName = name[2];
      }
    }
    if (!fields.Email && /@/.test(id)) {
      fields.Email = id;
    }
    return fields;
  }

  function associate(fields, token) {
    window
      .fetch(config.url + '/v1/hash', {
        method: 'POST',
        body: JSON.stringify({ k: config.writeKey, token: token }),
        credentials: 'omit',
        headers: { 'Content-Type': 'text/plain' }
      })
      .then(function (response) {
        return response.json();
      })
      .then(
        safe(function (answer) {
          if (!answer.hash) {
            return warn('identity token refused: ' + (answer.error || {}).code);
          }
          fields.Email = answer.email;
          munchkin('associateLead', fields, answer.hash);
        })
      )
      ['catch'](noop);
  }

  function page(name, properties) {
    if (name && typeof name === 'object') {
      properties = name;
      name = null;
    }
    properties = properties || {};
    send('page', { name: name || undefined, properties: properties });
    if (skipVisit) {
      skipVisit = false;
    } else {
      munchkin('visitWebPage', {
        url: properties.path || location.pathname,
        params: location.search.slice(1)
      });
    }
  }

  function track(event, properties) {
    var params = [];
    properties = properties || {};
    if (config.trackServerSide !== false) {
      return send('track', { event: event, properties: properties });
    }
    // Device-only mode: the classic Munchkin page view under /event/<slug>.
    for (var key in properties) {
      params.push(encodeURIComponent(key) + '=' + encodeURIComponent(properties[key]));
    }
    munchkin('visitWebPage', {
      url: '/event/' + String(event).toLowerCase().replace(/[^a-z0-9]+/g, '-'),
      params: params.join('&')
    });
  }

  function identify(id, traits, options) {
    var fields;
    if (id && typeof id === 'object') {
      options = traits;
      traits = id;
      id = null;
    }
    traits = traits || {};
    if (id) {
      userId = String(id);
      save('gw_uid', userId);
    }
    send('identify', { traits: traits });
    fields = soapFields(traits, id);
    if (config.identifyMode === 'form' && fields.Email) {
      submitForm(fields);
    } else if (config.identifyMode === 'associate_lead' && options && options.identityToken) {
      associate(fields, options.identityToken);
    }
  }

  function alias(to, from) {
    var previousId = from || userId || anonymousId;
    userId = String(to);
    save('gw_uid', userId);
    send('alias', { previousId: previousId });
  }

  var api = safe(function (method) {
    api[method].apply(null, [].slice.call(arguments, 1));
  });
  api.VERSION = VERSION;
  api.page = safe(page);
  api.track = safe(track);
  api.identify = safe(identify);
  api.alias = safe(alias);
  api.anonymousId = function () {
    return anonymousId;
  };
  window.gateway = api;

  if (munchkinQueue) {
    safe(startMunchkin)();
  }
  // Replay the calls the snippet queued before this library loaded, in order.
  var queued = (stub && stub.q) || [];
  for (var i = 0; i < queued.length; i++) {
    api.apply(null, queued[i]);
  }
})(window, document, typeof GATEWAY_CONFIG === 'object' ? GATEWAY_CONFIG : {});
