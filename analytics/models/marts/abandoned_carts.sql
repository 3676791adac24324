select
    storefront_id,
    order_id,
    status,
    design_name,
    created_at,
    total_value,
    total_currency,
    date_diff('day', created_at, now()) as age_days
from {{ ref('stg_orders') }}
where status in ('shopping_cart', 'editable')
    and created_at < now() - to_days(cast({{ var('abandoned_days') }} as integer))
order by total_value desc, storefront_id, order_id
