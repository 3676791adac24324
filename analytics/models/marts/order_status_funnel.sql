select
    storefront_id,
    status,
    count(*) as orders,
    sum(total_value) as value,
    round(count(*) * 100.0 / sum(count(*)) over (partition by storefront_id), 2) as share_pct
from {{ ref('stg_orders') }}
group by storefront_id, status
order by storefront_id, array_position({{ funnel_statuses() }}, status)
