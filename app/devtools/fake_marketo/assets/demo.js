// The demo site's few lines of script: buttons that call the gateway, a panel that polls the fake.
// Everything shown comes from visitors, so it goes in as text (textContent), never as HTML.
(function () {
  'use strict';
  var REFRESH_MS = 2000;
  var said = document.getElementById('said');

  function say(text) {
    said.textContent = text;
  }

  document.getElementById('page-view').addEventListener('click', function () {
    window.gateway.page();
    say('Sent a page view.');
  });
  document.getElementById('track').addEventListener('click', function () {
    window.gateway.track('Signed Up', { plan: 'pro' });
    say('Sent track "Signed Up" with plan: pro.');
  });
  document.getElementById('identify').addEventListener('submit', function (event) {
    event.preventDefault();
    var form = event.target;
    var traits = { email: form.email.value.trim() };
    if (form.firstName.value.trim()) {
      traits.firstName = form.firstName.value.trim();
    }
    window.gateway.identify(traits);
    say('Sent an identify for ' + traits.email + '.');
  });

  // Replace a table body's rows with one row per item, or one "nothing yet" row.
  function fill(body, items, cells, empty) {
    var rows = items.map(function (item) {
      var row = document.createElement('tr');
      cells(item).forEach(function (value) {
        var cell = row.insertCell();
        cell.textContent = value == null ? '' : String(value);
      });
      return row;
    });
    if (!rows.length) {
      var row = document.createElement('tr');
      var cell = row.insertCell();
      cell.colSpan = body.parentNode.tHead.rows[0].cells.length;
      cell.className = 'empty';
      cell.textContent = empty;
      rows.push(row);
    }
    body.replaceChildren.apply(body, rows);
  }

  // 2024-03-02T10:15:00Z as 2024-03-02 10:15:00 (UTC, as the column says).
  function when(iso) {
    return String(iso || '').replace('T', ' ').replace('Z', '');
  }

  function show(feed) {
    fill(document.getElementById('leads'), feed.leads, function (lead) {
      return [lead.id, lead.email, lead.firstName, lead.cookies, when(lead.updatedAt)];
    }, 'No leads yet: identify yourself.');
    fill(document.getElementById('activities'), feed.activities, function (activity) {
      return [when(activity.time), activity.leadId == null ? 'anonymous' : activity.leadId,
              activity.type, activity.detail];
    }, 'No activities yet.');
    document.getElementById('lead-total').textContent = '(' + feed.totals.leads + ' in all)';
  }

  function refresh() {
    fetch('/demo/feed.json', { cache: 'no-store' })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (feed) {
        show(feed);
        document.getElementById('feed-state').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
      })
      .catch(function () {
        document.getElementById('feed-state').textContent = 'The fake Marketo did not answer; retrying.';
      });
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
