/* Stand-in for Marketo's munchkin.js, served by the fake Marketo (the demo, browser tests): the
   same public calls, recorded in window.__munchkin and posted to the host it came from, with the
   _mkto_trk cookie, so the fake can log visits. Written for this project; it shares no code
   with Marketo's script. */
(function () {
  var script = document.currentScript;
  var origin = script ? new URL(script.src).origin : '';
  var calls = (window.__munchkin = window.__munchkin || []);

  function trackingCookie() {
    var found = document.cookie.match('(?:^|; )_mkto_trk=([^;]*)');
    return found ? found[1] : null;
  }

  function record(call) {
    calls.push(call);
    try {
      fetch(origin + '/record/munchkin', {
        method: 'POST',
        mode: 'no-cors',
        keepalive: true,
        body: JSON.stringify(Object.assign({ cookie: trackingCookie() }, call))
      });
    } catch (e) {}
  }

  function setCookie(id) {
    var token = '_mch-' + location.hostname + '-' + Date.now() + '-' + (10000 + Math.floor(Math.random() * 89999));
    document.cookie = '_mkto_trk=id:' + id + '&token:' + token + '; path=/; max-age=63072000';
  }

  window.Munchkin = {
    id: null,
    init: function (id, options) {
      options = options || {};
      this.id = id;
      record({ fn: 'init', id: id, options: options, page: location.pathname });
      if (options.cookieAnon !== false && document.cookie.indexOf('_mkto_trk=') < 0) {
        setCookie(id);
      }
      if (!options.apiOnly) {
        record({ fn: 'visitWebPage', data: { url: location.pathname, params: location.search.slice(1) }, auto: true });
      }
    },
    munchkinFunction: function (name, data, hash) {
      if (!this.id) {
        throw new Error('Munchkin.init was not called');
      }
      record({ fn: name, data: data, hash: hash });
    },
    createTrackingCookie: function () {
      if (document.cookie.indexOf('_mkto_trk=') < 0) {
        setCookie(this.id);
      }
    }
  };
})();
