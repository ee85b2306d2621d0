/* Marketo gateway browser library: a Segment-like API over Munchkin and beacons. */
/* identify() loads gateway-identify.js (Forms 2.0, associateLead) when it first needs them; */
/* pages with an IAB TCF consent manager load gateway-tcf.js. */
/* Plain ES2020 (arrow functions, promises, optional chaining): every current browser. */
/* Served minified: .ci/build-js makes static/gateway.min.js from this file. */
(function (window, document, config) {
  'use strict';

  var VERSION = '0.2.0';
  const stub = window.gateway;
  const noop = () => {};
  // try/catch as an expression: onError(error) answers when fn throws.
  const attempt = (fn, onError = noop) => {
    try {
      return fn();
    } catch (e) {
      return onError(e);
    }
  };
  const warn = (message) => attempt(() => console.warn('gateway: ' + message));
  // Keep every error away from the host page: a tracker must never break a site.
  const safe =
    (fn) =>
    (...args) =>
      attempt(() => fn(...args), warn);

  // Step aside when the library already runs on this page (the loader was included twice).
  if (stub?.VERSION) {
    return warn('loaded twice');
  }

  const cookie = (name) => {
    const value = (document.cookie.match('(?:^|; )' + name + '=([^;]*)') || [])[1] || '';
    return attempt(() => decodeURIComponent(value), () => value);
  };
  // First-party ids are cookies on the site's own domain, kept for a year.
  const save = (name, value) =>
    (document.cookie =
      name + '=' + encodeURIComponent(value) + '; path=/; max-age=31536000; SameSite=Lax');
  const uuid = () =>
    crypto.randomUUID?.() ||
    'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
      const r = (Math.random() * 16) | 0;
      return (c == 'x' ? r : (r & 3) | 8).toString(16);
    });

  let anonymousId = cookie('gw_aid') || uuid();
  let userId = cookie('gw_uid');
  const setUser = (id) => save('gw_uid', (userId = String(id)));

  // Consent (settings `consent`): in opt_in mode nothing runs before the visitor agrees; in
  // opt_out mode until they decline. The choice ({analytics, marketing}) is kept in gw_consent.
  // Global Privacy Control is a refusal of marketing in every mode unless the site turns it off.
  const consent = config.consent || {};
  const gpc = consent.gpc !== false && navigator.globalPrivacyControl === true;
  let choice;
  const choose = (categories) =>
    (choice = categories || gpc ? { ...categories, ...(gpc && { marketing: false }) } : categories);
  choose(attempt(() => JSON.parse(cookie('gw_consent')), noop));
  // true: track; false: refused; null: not asked yet (opt_in waits).
  const decision = () =>
    choice
      ? (consent.required || ['marketing']).every((name) => choice[name] === true)
      : consent.mode != 'opt_in' || null;
  // Calls made while the decision is pending, sent in order on consent, dropped on refusal.
  let waiting = [];

  // Resolves true when the script loaded, undefined when it failed (blocked, offline).
  const loadScript = (src) =>
    new Promise((resolve) =>
      document.head.appendChild(
        Object.assign(document.createElement('script'), {
          src,
          onload: () => resolve(true),
          onerror: () => resolve(),
        })
      )
    );
  // Text bodies avoid a CORS preflight; keepalive outlives navigation.
  const post = (path, body) =>
    fetch(config.url + '/v1/' + path, { method: 'POST', body, keepalive: true });

  // Beacons and form posts wait until Munchkin has set _mkto_trk, which ties them to the lead;
  // release() lets them go (after the cookie, Munchkin's failure, 5 s, or the page hiding);
  // nothing goes once consent is withdrawn.
  let release;
  const settled = new Promise((resolve) => (release = resolve));
  const later = (fn) => settled.then(safe(() => decision() && fn()));
  const waitForCookie = (tries) =>
    cookie('_mkto_trk') || !tries ? release() : setTimeout(waitForCookie, 100, tries - 1);
  addEventListener('pagehide', release);

  const munchkinOptions = config.munchkinOptions || {};
  // Munchkin.init records the first page view itself unless apiOnly is set.
  let skipVisit = !munchkinOptions.apiOnly;
  // Resolves true once Munchkin.init ran, falsy when Munchkin is off, blocked or broken. Set
  // by start(), the first time tracking is allowed: no id cookie and no Munchkin before that.
  let munchkinReady;
  const start = () => {
    save('gw_aid', anonymousId);
    munchkinReady ||= (
      setTimeout(release, 5000),
      config.munchkinId && config.munchkinScriptUrl
        ? loadScript(config.munchkinScriptUrl)
        : Promise.resolve()
    )
      .then(
        safe((loaded) => {
          if (loaded) {
            window.Munchkin.init(config.munchkinId, { asyncOnly: true, ...munchkinOptions });
          }
          return loaded;
        })
      )
      .then((ready) => {
        waitForCookie(ready ? 20 : 0);
        return ready;
      });
  };
  const munchkin = (...args) =>
    munchkinReady.then(
      safe((ready) => ready && decision() && window.Munchkin.munchkinFunction(...args))
    );

  function send(type, message, identityToken) {
    Object.assign(message, {
      type,
      messageId: uuid(),
      timestamp: new Date().toISOString(),
      anonymousId,
      userId: userId || undefined,
      writeKey: config.writeKey,
      context: {
        page: {
          path: location.pathname,
          referrer: document.referrer,
          search: location.search,
          title: document.title,
          url: location.href,
        },
        userAgent: navigator.userAgent,
        identityToken,
        consent: choice && { categoryPreferences: choice },
      },
    });
    later(() => {
      const marketoCookie = cookie('_mkto_trk');
      if (marketoCookie) {
        message.context.Marketo = { marketoCookie };
      }
      const body = JSON.stringify(message);
      if (!attempt(() => navigator.sendBeacon(config.url + '/v1/' + type[0], body))) {
        post(type[0], body).catch(noop);
      }
    });
  }

  function page(name, properties) {
    if (name && typeof name == 'object') {
      [name, properties] = [null, name];
    }
    properties = properties || {};
    send('page', { name: name || undefined, properties });
    if (skipVisit) {
      skipVisit = false;
    } else {
      munchkin('visitWebPage', {
        url: properties.path || location.pathname,
        params: location.search.slice(1),
      });
    }
  }

  function track(event, properties) {
    properties = properties || {};
    if (config.trackServerSide !== false) {
      return send('track', { event, properties });
    }
    // Device-only mode: the classic Munchkin page view under /event/<slug>.
    munchkin('visitWebPage', {
      url: '/event/' + String(event).toLowerCase().replace(/[^a-z0-9]+/g, '-'),
      params: Object.keys(properties)
        .map((key) => encodeURIComponent(key) + '=' + encodeURIComponent(properties[key]))
        .join('&'),
    });
  }

  // Form submission and associateLead live in a second script, loaded on the first identify
  // that needs them: the page views of visitors who never identify do not download that code.
  let identifier;
  const extras = () =>
    (identifier ||= loadScript(config.url + '/v1/identify.js?v=' + config.identifyVersion));
  function identify(id, traits, options) {
    if (id && typeof id == 'object') {
      [id, traits, options] = [null, id, traits];
    }
    traits = traits || {};
    if (id) {
      setUser(id);
    }
    // The back end's identity token lets this identify write the lead (SPEC 5.4).
    send('identify', { traits }, options?.identityToken);
    if (config.identifyMode == 'form' || (config.identifyMode == 'associate_lead' && options?.identityToken)) {
      extras().then(
        safe((loaded) =>
          loaded
            ? api.identifyInMarketo(config, cookie, later, munchkin, post, warn, safe, loadScript, id, traits, options)
            : warn('no identify.js')
        )
      );
    }
  }

  // Company traits (Segment's group call); recorded by the gateway, not sent to Marketo.
  function group(groupId, traits) {
    send('group', { groupId, traits: traits || {} });
  }

  function alias(to, from) {
    const previousId = from || userId || anonymousId;
    setUser(to);
    send('alias', { previousId });
  }

  // gateway.consent({analytics, marketing}): the visitor's choice, e.g. from a consent manager.
  // Withdrawal removes the gateway's cookies and Munchkin's _mkto_trk (identify module).
  function consentTo(categories) {
    save('gw_consent', JSON.stringify(choose(categories)));
    if (decision()) {
      start();
      waiting.forEach((call) => call());
    } else {
      // The cookies go from the module identify() uses: most visitors never withdraw.
      extras().then(safe(() => api.dropCookies()));
    }
    waiting = [];
  }

  // gateway('track', ...) and gateway.track(...) alike; each method is kept safe.
  const api = safe((method, ...args) => api[method](...args));
  // Names spelled out: the minified build renames functions.
  // Each call runs when tracking is allowed, waits while the decision is pending, or is dropped.
  for (const [name, method] of Object.entries({ page, track, identify, alias, group })) {
    api[name] = safe((...args) => {
      const now = decision();
      const call = () => (start(), method(...args));
      now ? call() : now ?? waiting.push(call);
    });
  }
  api.consent = safe(consentTo);
  api.VERSION = VERSION;
  api.anonymousId = () => anonymousId;
  window.gateway = api;
  // An IAB TCF consent manager on the page: the TCF module (consent.tcf names its version)
  // reads the visitor's choice from it and reports it through api.consent.
  if (consent.tcf && window.__tcfapi) {
    loadScript(config.url + '/v1/tcf.js?v=' + consent.tcf);
  }
  // Replay the calls the snippet queued before this library loaded, in order.
  (stub?.q || []).forEach((args) => api(...args));
  // GATEWAY_CONFIG: the parameter the loader template (app/templates/loader.js.j2) wraps us in.
})(window, document, GATEWAY_CONFIG);
